"""Tenants: apps, their credentials and their limits."""
