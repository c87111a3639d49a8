"""Keys, signed links and app secrets."""
