"""The import rules, in the style of Mattermost's import validators.

Per resource (``users``, ``rooms``, ``comments``): a pure parser of one raw row to its
values and problems, a pure check of uniqueness inside the file, and a pure check of the
rows against what the app already holds; ``lookups`` is the one step that reads the
database (in batched queries), and ``importers`` ties the steps together per resource in
a registry. ``common`` and ``fields`` hold what they share; ``file`` checks the file as a
whole. Only ``lookups`` and ``importers`` import the database layer.
"""
