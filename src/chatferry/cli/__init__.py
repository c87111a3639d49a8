"""The ``chatferry`` command line."""
