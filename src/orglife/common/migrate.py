"""Alembic migrations per service, run by `orglife up` and by the test fixtures.

Each service keeps its revisions in services/<name>/migrations; this module configures Alembic
in code so no alembic.ini is needed and the database URL comes from the service's config.
"""
from __future__ import annotations

import importlib
import logging

from alembic import command
from alembic.config import Config

from pathlib import Path


def migrations_folder(service: str) -> Path:
    """Next to the service's package, wherever it is installed."""
    package = importlib.import_module(f"services.{service}")
    return Path(package.__file__).resolve().parent / "migrations"


def alembic_config(service: str, db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_folder(service)))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    cfg.attributes["service"] = service
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(service: str, db_url: str, revision: str = "head") -> None:
    from .db import make_engine
    make_engine(db_url).dispose()  # creates the SQLite folder if needed
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command.upgrade(alembic_config(service, db_url), revision)


def run_env(context) -> None:
    """Body of every services/<name>/migrations/env.py."""
    from .db import make_engine
    cfg = context.config
    service = cfg.attributes.get("service") or cfg.get_main_option("service")
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
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
