"""The chatferry client: talks to any server that speaks the export/import API.

Nothing here imports the server stack (SQLAlchemy, FastAPI, storage): the command line's
client commands start fast and the package works against a vendor's server too.
"""
