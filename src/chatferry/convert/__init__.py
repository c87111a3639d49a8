"""``chatferry convert``: a Mattermost bulk export or a Slack export as a chatferry backup
directory (offline), which ``chatferry verify`` checks and ``chatferry restore`` imports.

The client layer: it imports only ``chatferry.client`` and the core modules.
"""
