"""The durable job queue: job rows in the app database, claimed by workers."""
