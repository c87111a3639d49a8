"""Exports (backups): requests, the export job and the files it writes."""
