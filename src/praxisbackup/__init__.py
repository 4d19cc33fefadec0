"""praxisbackup: encrypted, deduplicated, verified nightly backups for a medical practice."""

__version__ = "0.1.0"
