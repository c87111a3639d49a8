"""Webhooks: per-app endpoints told of their jobs' ends, signed as Standard Webhooks."""
