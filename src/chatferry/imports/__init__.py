"""Imports (restores): uploads, the checks of the spec's rules and the import job."""
