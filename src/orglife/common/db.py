"""Database access: engines, the backbone tables, and a unit of work per change.

A unit of work wraps one SQLAlchemy session. Events a change emits are written to the outbox
table in the same transaction as the change itself (so they never part), and an event a
consumer handles is recorded in the inbox table in the same transaction as its effect (so a
redelivery changes nothing).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import (
    BigInteger, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text,
    create_engine, event, func, insert, inspect, select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .clock import Clock
from .envelope import Envelope
from .schemas import unstorable
from .system import System, load_system

log = logging.getLogger(__name__)

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Backbone:
    """The event tables every service has in its own database."""

    outbox: Table
    inbox: Table
    relay_lease: Table


def backbone_tables(metadata: MetaData) -> Backbone:
    outbox = Table(
        "outbox", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("exchange", String(128), nullable=False),
        Column("routing_key", String(128), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
    )
    # The relay only ever scans unsent rows; a partial index keeps that scan small.
    Index("ix_outbox_unsent", outbox.c.id,
          sqlite_where=outbox.c.sent_at.is_(None), postgresql_where=outbox.c.sent_at.is_(None))
    inbox = Table(
        "inbox", metadata,
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("source", String(64), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )
    # No longer read: the relay's lease is now a lock that dies with its holder (outbox.py);
    # kept so that existing databases and their migrations stay as they are.
    relay_lease = Table(
        "relay_lease", metadata,
        Column("name", String(32), primary_key=True),
        Column("holder", String(128), nullable=False),
        Column("expires_at", Float, nullable=False),
    )
    return Backbone(outbox, inbox, relay_lease)


WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def _sqlite_pragmas(dbapi_connection, _record):
    # pysqlite's own transaction handling begins only before the first write, so a unit of
    # work read its rows outside any transaction and then wrote "version + 1" of what may no
    # longer be stored. It is turned off here; _sqlite_begin issues the BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # The WAL is copied back into the database every 10,000 pages (40 MB), not SQLite's
    # 1,000: a page a burst rewrites in many commits (an index's leaf, a tally) is copied
    # once per checkpoint, and the committing consumer that runs the checkpoint (a quarter
    # of members' intake in py-spy) does so a tenth as often. bench/scoring.py at a 0.4
    # fraction: 11% less CPU per meeting across the services; bench/wal_checkpoint.py.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    # and a WAL that a long reader let grow past that is cut back once checkpointed
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    """Every SQLite transaction takes the write lock when it begins (BEGIN IMMEDIATE): SQLite
    has no row locks (`with_for_update` does nothing), so a unit of work that reads a member
    and writes its next version must hold the database from its first read, waiting
    (busy_timeout) for another writer to finish rather than failing with "database is locked"
    or writing over it. A connection may ask for a plain deferred BEGIN, for reading only, with
    the execution option `sqlite_begin="DEFERRED"`."""
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    mode = options.get("sqlite_begin", "IMMEDIATE")
    if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise ValueError(f"sqlite_begin must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, **kwargs) -> Engine:
    """SQLite files get WAL and transactions that lock at their start (_sqlite_begin);
    PostgreSQL goes through psycopg2 made eventlet-cooperative.

    Parameters are kept out of SQLAlchemy's error messages: they carry phone numbers, which
    never appear in logs (SPEC §7)."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            raise ValueError("in-memory SQLite is not shared between engines: use a file URL")
        path = url.split("///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        _make_psycopg2_green()
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_pre_ping", True)
        # A peer that vanished (a partitioned host) is noticed in about 25 s, not the OS's
        # two hours: the relay's lease is a session lock and must not outlive its holder.
        kwargs.setdefault("connect_args", {"keepalives": 1, "keepalives_idle": 10,
                                           "keepalives_interval": 5, "keepalives_count": 3})
    return create_engine(url, **kwargs)


def _make_psycopg2_green() -> None:
    """psycopg2 blocks the eventlet hub unless told to wait through it (KNOWN-TRAPS)."""
    try:
        import eventlet.patcher
        if not eventlet.patcher.is_monkey_patched("socket"):
            return
        from psycogreen.eventlet import patch_psycopg
        patch_psycopg()
    except ImportError:  # pragma: no cover - psycogreen is a pinned dependency
        log.warning("psycogreen missing: PostgreSQL queries will block other workers")


class UnitOfWork:
    """One change: a session, the events it emits, and the event (if any) it consumes.

    Use as a context manager; nothing is stored unless `commit()` is called.
    """

    def __init__(self, session_factory: Callable[[], Session], source: str,
                 backbone: Backbone, after_commit: Callable[[], None] | None = None, *,
                 system: System | None = None, clock: Clock | None = None):
        self._session_factory = session_factory
        self.source = source
        self.backbone = backbone
        self._after_commit = after_commit
        self.system = system or load_system()
        self.clock = clock or Clock()
        self.session: Session | None = None
        self.pending: list[Envelope] = []
        self._batch_depth = 0

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        self.pending = []
        return self

    def __exit__(self, *exc):
        try:
            self.rollback()
        finally:
            self.session.close()

    def emit(self, event_type: str, data: dict) -> Envelope:
        """Queue an event; it is written to the outbox at commit, with the change. Its schema
        version is the one declared for it (an undeclared event is refused), its
        `occurred_at` the service clock's now."""
        event = self.system.event(self.source, event_type)
        envelope = Envelope.new(self.source, event_type, data, event.version,
                                occurred_at=self.clock.now())
        self.pending.append(envelope)
        return envelope

    def first_time(self, envelope: Envelope) -> bool:
        """Record a consumed event; False when it was handled before (a redelivery)."""
        return bool(self.first_times([envelope]))

    def first_times(self, envelopes) -> list[Envelope]:
        """The envelopes of a batch not handled before, each once, in the batch's order, all
        recorded in the inbox by one INSERT .. ON CONFLICT DO NOTHING RETURNING (two
        consumers recording one event at once: only one of them gets it back). One statement
        per batch: SQLAlchemy 2.0 compiles an ON CONFLICT statement anew at each execution,
        which cost more than the rest of handling a meeting."""
        seen: set[str] = set()
        unique = [e for e in envelopes  # the first of copies, where it came
                  if e.event_id not in seen and not seen.add(e.event_id)]
        if not unique:
            return []
        connection = self.session.connection()
        now = utcnow()
        fresh = set(connection.execute(
            _inbox_insert(self.backbone.inbox, connection.dialect.name),
            [{"event_id": e.event_id, "event_type": e.event_type, "source": e.source,
              "handled_at": now} for e in unique]).scalars())
        return [envelope for envelope in unique if envelope.event_id in fresh]

    @contextmanager
    def batch(self):
        """Several changes, one transaction: `commit()` inside only flushes the session; the
        rows queued by `insert_later`, the outbox rows and the commit come when the batch
        ends (and a rollback if it raises)."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
        if self._batch_depth == 0:
            self.commit()

    def commit(self) -> None:
        if self._batch_depth:  # the batch commits once, outbox rows and all, when it ends
            self.session.flush()
            return
        write_queued(self.session)
        if self.pending:
            now = utcnow()
            self.session.execute(insert(self.backbone.outbox), [
                {
                    "event_id": env.event_id,
                    "exchange": f"{env.source}.events",
                    "routing_key": env.event_type,
                    "body": env.to_json(),
                    "created_at": now,
                }
                for env in self.pending
            ])
        had_events = bool(self.pending)
        self.pending = []
        self.session.commit()
        if had_events and self._after_commit:
            self._after_commit()

    def rollback(self) -> None:
        self.pending = []
        if self.session is not None:
            self.session.info.pop("insert_later", None)
            self.session.rollback()


@lru_cache(maxsize=16)
def _inbox_insert(table: Table, dialect: str):
    """INSERT .. ON CONFLICT DO NOTHING RETURNING event_id, built once per table and dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing(
        index_elements=["event_id"]).returning(table.c.event_id)


# -- one query per batch instead of one per event --------------------------------------------
def prefetch(session: Session, model, keys, *, for_update: bool = False) -> None:
    """Load the rows of `model` (single-column primary key) whose keys are in `keys` with one
    query, so that `lookup` answers each key, found or known absent, without a query of its
    own: a consumer's batch of events pays one SELECT instead of one per event. On PostgreSQL
    `for_update` locks the rows found, in key order (two batches never lock crosswise)."""
    column = inspect(model).primary_key[0]
    # Keys come from payloads not validated yet: one that cannot be stored cannot be found
    # either (and must not break the query; its handler names it).
    wanted = sorted({key for key in keys if isinstance(key, str) and len(key) <= 200
                     and unstorable(key) is None})
    known = session.info.setdefault("prefetched", {})  # strong references: kept while it lives
    locked = session.info.setdefault("prefetched_locked", set())
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        query = select(model).where(column.in_(chunk)).order_by(column)
        if for_update:
            query = query.with_for_update()
        found = {getattr(row, column.key): row for row in session.scalars(query)}
        for key in chunk:
            known[(model, key)] = found.get(key)
            if for_update:
                locked.add((model, key))


def lookup(session: Session, model, key, **options):
    """`session.get(model, key)`, answered from `prefetch` when it knows the key (and, when
    the row is asked for locked, locked it). When it must ask the database, the rows queued
    by `insert_later` are written first, so that the row of a key `stored` is found."""
    known = session.info.get("prefetched")
    if known and (model, key) in known and (
            not options.get("with_for_update")
            or (model, key) in session.info.get("prefetched_locked", ())):
        return known[(model, key)]
    write_queued(session)
    return session.get(model, key, **options)


def stored(session: Session, model, key) -> None:
    """`key` was just written outside the ORM (a Core insert, now or queued by
    `insert_later`): `lookup` must ask again."""
    session.info.get("prefetched", {}).pop((model, key), None)


# -- inserts written once per unit of work ---------------------------------------------------
def insert_later(session: Session, statement, rows) -> None:
    """Queue `rows` (a dict or a list of dicts) for `statement`, a Core INSERT built once; the
    unit of work writes each statement's rows with one executemany when it commits (a batch:
    when the batch ends), parent tables first (`write_queued`). A consumer's batch
    of 200 meetings thus pays one call per table instead of one per meeting and table (the
    per-call overhead was a fifth of meetings' intake). Until then no query sees the rows:
    callers mark each key `stored`, and `lookup` writes the queue before asking for it; any
    other read or delete of such a table in the same unit of work (a plain `session.get`, a
    SELECT, a DELETE) must call `write_queued` first."""
    queued = session.info.setdefault("insert_later", {}).setdefault(statement, [])
    if isinstance(rows, dict):
        queued.append(rows)
    else:
        queued.extend(rows)


def write_queued(session: Session) -> None:
    """Write what `insert_later` queued: when the unit of work commits, when `lookup` must ask
    the database, and before a DELETE of rows that may be queued. Parent tables first (the
    order of their metadata's foreign keys), so that a key added between two tables later
    cannot make the order in which statements were first queued matter."""
    queued = session.info.pop("insert_later", None)
    if not queued:
        return
    connection = session.connection()
    for statement in sorted(queued, key=_table_order):
        if queued[statement]:
            insert_rows(connection, statement, queued[statement])


def insert_rows(connection, statement, rows: list[dict]) -> None:
    """`connection.execute(statement, rows)` for a plain Core INSERT. On SQLite the rows go
    to the driver's executemany as tuples, the statement compiled once and only each column's
    own conversion applied (a date to text, a bool to 0/1, JSON to text: the same bind
    processors SQLAlchemy applies): its building of a parameter dict per row cost as much as
    SQLite's work on it (py-spy on meetings' intake). A statement that would fill a column
    itself (a Python-side default) or returns rows takes SQLAlchemy's way. Rows with
    different columns are written one group of columns at a time (SQLAlchemy's executemany
    would bind the first row's columns only and drop the others' extra values)."""
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        groups: dict[frozenset, list[dict]] = {}
        for row in rows:
            groups.setdefault(frozenset(row), []).append(row)
        for group in groups.values():
            insert_rows(connection, statement, group)
        return
    if connection.dialect.name == "sqlite":
        plan = _driver_insert(statement, connection.dialect, tuple(keys))
        if plan is not None:
            sql, order, processors = plan
            if processors:
                processors = [(key, convert and _reusing_last(convert))
                              for key, convert in processors]
                params = [tuple(row[key] if convert is None else convert(row[key])
                                for key, convert in processors) for row in rows]
            else:
                params = [tuple(row[key] for key in order) for row in rows]
            connection.exec_driver_sql(sql, params)
            return
    connection.execute(statement, rows)


def _reusing_last(convert):
    """`convert`, answering again without converting when given the very object it was given
    last: the rows of one meeting share its datetime and flags, and SQLite's datetime
    conversion (a strftime per row) was a twentieth of members' intake (py-spy)."""
    last_value, last_result = object(), None

    def converted(value):
        nonlocal last_value, last_result
        if value is not last_value:
            last_value, last_result = value, convert(value)
        return last_result
    return converted


@lru_cache(maxsize=64)
def _driver_insert(statement, dialect, keys: tuple[str, ...]):
    """(SQL, bind order, [(key, converter or None)] or () when none converts) of `statement`
    for rows carrying `keys`; None when SQLAlchemy must run it: it binds a name no row has, or
    returns rows (RETURNING, return_defaults: sqlite3's executemany refuses a statement that
    returns rows)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    if not order or set(order) != set(keys) or getattr(compiled, "effective_returning", None):
        return None
    converters = compiled._bind_processors  # SQLAlchemy 2.0's per-bind conversions
    processors = tuple((key, converters.get(key)) for key in order)
    if all(convert is None for _, convert in processors):
        processors = ()
    return str(compiled), order, processors


def _table_order(statement) -> int:
    return statement.table.metadata.sorted_tables.index(statement.table)


def under(column, org_id: str):
    """`column` (a "/c1/t1/b1/" path) lies in the subtree of `org_id`: a LIKE whose wildcards
    in the id (ids may contain `_` and `%`) are escaped, so b_1 never matches b11."""
    escaped = org_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"%/{escaped}/%", escape="\\")


def page(session, query, order_by, filters: dict, to_dict) -> dict:
    """A list method's answer (SPEC §4): `{"items": [...], "total": N}` for limit/offset."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(*order_by).limit(filters["limit"])
                           .offset(filters["offset"])).all()
    return {"items": [to_dict(row) for row in rows], "total": total}


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
