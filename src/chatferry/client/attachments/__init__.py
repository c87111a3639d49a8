"""Attachments: the files that messages and avatars point to, kept beside a backup's parts."""
