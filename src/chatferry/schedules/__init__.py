"""Scheduled exports: one-off (``run_at``) and periodic (cron) schedules."""
