"""The web console's static files (``static/``), served by ``chatferry.api.console``."""
