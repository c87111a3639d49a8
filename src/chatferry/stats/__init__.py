"""Statistics over an app's data: rows per day and which days exports cover."""
