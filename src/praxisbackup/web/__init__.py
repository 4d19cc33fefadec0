"""The status page for the practice staff (``praxisbackup serve`` serves it): see ``web.app``."""
