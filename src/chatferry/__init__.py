"""chatferry: backup, export and import for chat application data."""

__version__ = "0.1.0"
