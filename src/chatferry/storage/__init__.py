"""Where export files live: local files by default, S3-compatible storage later."""
