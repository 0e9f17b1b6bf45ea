"""Alembic migration scripts of the trace store, shipped as package data (see agentrt.store)."""
