"""Where export files live: local files by default, or S3-compatible object storage."""
