"""Alembic migrations per service, run by `orglife up` and by the test fixtures.

Each declared service keeps its revisions in `<package>/migrations` (services/<name>/ by
default, see orglife/system.py); this module configures Alembic in code so no alembic.ini is
needed and the database URL comes from the service's config.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from .system import System, load_system


def migrations_folder(package: str) -> Path:
    """Next to the service's package, wherever it is installed."""
    module = importlib.import_module(package)
    return Path(module.__file__).resolve().parent / "migrations"


def alembic_config(package: str, db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_folder(package)))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    cfg.attributes["package"] = package
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(service: str, db_url: str, system: System | None = None,
            revision: str = "head") -> None:
    """Bring the database of a declared service to `revision`."""
    from .db import make_engine
    package = (system or load_system()).service(service).package
    make_engine(db_url).dispose()  # creates the SQLite folder if needed
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command.upgrade(alembic_config(package, db_url), revision)


def run_env(context) -> None:
    """Body of every <package>/migrations/env.py."""
    from .db import make_engine
    cfg = context.config
    package = cfg.attributes.get("package") or cfg.get_main_option("package")
    metadata = importlib.import_module(f"{package}.models").Base.metadata
    url = cfg.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def create_backbone_tables(op) -> None:
    """In a service's first revision: the outbox, inbox and relay lease tables of
    orglife/common/db.py (members and meetings wrote theirs out before this existed)."""
    import sqlalchemy as sa

    from .db import BigId
    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("exchange", sa.String(length=128), nullable=False),
        sa.Column("routing_key", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["id"],
                    sqlite_where=sa.text("sent_at IS NULL"),
                    postgresql_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_inbox"),
    )
    op.create_table(
        "relay_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_relay_lease"),
    )


def set_sqlite_rowid(op, tables, with_rowid: bool) -> None:
    """In a revision: rebuild `tables` on SQLite as rowid or WITHOUT ROWID tables, rows and
    keys kept (Alembic's batch mode copies each into a new table made with the option, then
    renames it). PostgreSQL has no rowid: nothing to do there."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in tables:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_with_rowid": with_rowid}):
            pass
