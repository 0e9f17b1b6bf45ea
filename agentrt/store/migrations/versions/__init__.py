"""Alembic revisions of the trace store, one file each, numbered 0001, 0002, ... in order."""
