"""Alembic environment for the agentrt store.

Runs in three ways: with a connection handed in through `config.attributes["connection"]` (what
the store does on open; the caller owns the transaction), online from the `sqlalchemy.url`
option (autogenerate, manual upgrades), and offline (`sql=True`, prints the SQL). This file
knows no table: it takes the metadata from `agentrt.store.migrate.target_metadata`.
"""

from __future__ import annotations

from alembic import context

from agentrt.store.engine import make_engine, parse_url, writer
from agentrt.store.migrate import target_metadata
from agentrt.store.models import UTCDateTime

config = context.config


def _render_item(type_: str, obj: object, _autogen_context: object) -> str | bool:
    # Revision scripts stay plain SQLAlchemy: UTC handling is Python-side only.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# render_as_batch: autogenerate writes ALTERs as batch operations, which SQLite needs (it
# rebuilds the table) and PostgreSQL runs as plain ALTER TABLE.
_OPTIONS = {
    "target_metadata": target_metadata(),
    "render_as_batch": True,
    "compare_type": True,
    "render_item": _render_item,
}


def _run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic needs a connection or the sqlalchemy.url option")
    engine = make_engine(parse_url(url))
    try:
        with writer(engine).begin() as conn:
            context.configure(connection=conn, **_OPTIONS)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
