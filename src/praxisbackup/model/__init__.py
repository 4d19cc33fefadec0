"""The shared model: the configuration schema, the run protocol, where local state lives.

The bottom of the practice side: it imports nothing of praxisbackup but ``errors``, so every
other package (domain, application, interfaces) can use it without cycles.
"""
