"""orglife.common.db's batch reads (prefetch, lookup, stored) on SQLite and PostgreSQL: one
query answers a batch's keys, found or known absent; a row asked for locked is never answered
from an unlocked prefetch; a locked prefetch really holds the rows on PostgreSQL; a row written
by a Core insert after the prefetch is asked for again."""
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from orglife.common.db import lookup, make_engine, prefetch, session_factory, stored
from orglife.common.migrate import upgrade
from services.members.models import MeetingVersion


def seeded(url):
    upgrade("members", url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(MeetingVersion.__table__.insert(), [
            {"meeting_id": "a", "revision": 1, "cancelled": False},
            {"meeting_id": "b", "revision": 2, "cancelled": False}])
    return engine


@pytest.fixture
def engine(db_url):
    engine = seeded(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url):
    """Row locks are PostgreSQL's (SQLite's writer holds the whole database: db._sqlite_begin)."""
    engine = seeded(pg_url)
    yield engine
    engine.dispose()


def counting(engine) -> list:
    statements = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))
    return statements


def test_one_query_answers_the_batch_and_a_locked_read_is_never_taken_from_an_unlocked_one(
        engine):
    statements = counting(engine)
    with session_factory(engine)() as session:
        prefetch(session, MeetingVersion, ["b", "a", "zz", 7, "x" * 300])  # junk is skipped
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1
        before = len(statements)
        assert lookup(session, MeetingVersion, "a").revision == 1
        assert lookup(session, MeetingVersion, "zz") is None  # known absent: no query
        assert len(statements) == before
        assert lookup(session, MeetingVersion, "a", with_for_update=True).revision == 1
        assert len(statements) == before + 1  # asked locked: read again, locked
        session.execute(MeetingVersion.__table__.insert(),
                        {"meeting_id": "zz", "revision": 1, "cancelled": False})
        stored(session, MeetingVersion, "zz")
        assert lookup(session, MeetingVersion, "zz").revision == 1  # asked again
        session.rollback()


def test_a_locked_prefetch_holds_its_rows_until_the_transaction_ends(pg_engine):
    engine = pg_engine
    statements = counting(engine)
    with session_factory(engine)() as holder:
        prefetch(holder, MeetingVersion, ["b"], for_update=True)
        before = len(statements)
        assert lookup(holder, MeetingVersion, "b", with_for_update=True).revision == 2
        assert len(statements) == before  # locked already: no second query
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock"):
                other.execute(text("SELECT revision FROM meeting_versions WHERE meeting_id = 'b'"
                                   " FOR UPDATE"))
            other.rollback()
            # a row the prefetch did not ask for is not held
            assert other.execute(text("SELECT revision FROM meeting_versions WHERE "
                                      "meeting_id = 'a' FOR UPDATE")).scalar_one() == 1
            other.rollback()
        holder.rollback()
    with engine.connect() as other:  # released with the transaction
        assert other.execute(text("SELECT revision FROM meeting_versions WHERE "
                                  "meeting_id = 'b' FOR UPDATE")).scalar_one() == 2


def test_rows_queued_by_insert_later_are_written_at_commit_or_when_a_lookup_needs_them(engine):
    """insert_later: nothing is written until the unit of work commits (one executemany per
    statement), a lookup of a key marked stored writes the queue first, a rollback drops it."""
    from sqlalchemy import func, select

    from orglife.common.db import insert_later, write_queued
    new_version = MeetingVersion.__table__.insert()

    def count(session):
        return session.scalar(select(func.count()).select_from(MeetingVersion))

    statements = counting(engine)
    with session_factory(engine)() as session:
        prefetch(session, MeetingVersion, ["c", "d"])
        insert_later(session, new_version, {"meeting_id": "c", "revision": 1, "cancelled": False})
        insert_later(session, new_version, [{"meeting_id": "d", "revision": 1, "cancelled": False},
                                            {"meeting_id": "e", "revision": 1, "cancelled": False}])
        stored(session, MeetingVersion, "c")
        assert count(session) == 2  # queued, not written
        assert lookup(session, MeetingVersion, "d") is None  # prefetched absent: still queued
        inserts = len([s for s in statements if s.lstrip().upper().startswith("INSERT")])
        assert lookup(session, MeetingVersion, "c").revision == 1  # the queue written first
        assert count(session) == 5
        assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) \
            == inserts + 1  # the three rows in one statement
        session.rollback()
        write_queued(session)  # nothing left to write
        assert count(session) == 2


def test_queued_rows_are_written_parent_tables_first(engine):
    """write_queued follows the tables' foreign keys, not the order statements were queued."""
    from sqlalchemy import Column, ForeignKey, MetaData, String, Table

    from orglife.common.db import insert_later, write_queued
    metadata = MetaData()
    parent = Table("queued_parent", metadata, Column("id", String(8), primary_key=True))
    child = Table("queued_child", metadata, Column("id", String(8), primary_key=True),
                  Column("parent_id", String(8), ForeignKey("queued_parent.id")))
    metadata.create_all(engine)
    statements = counting(engine)
    try:
        with session_factory(engine)() as session:
            insert_later(session, child.insert(), {"id": "c1", "parent_id": "p1"})
            insert_later(session, parent.insert(), {"id": "p1"})
            write_queued(session)
            session.commit()
        inserts = [s.split()[2] for s in statements if s.lstrip().upper().startswith("INSERT")]
        assert inserts == ["queued_parent", "queued_child"]
    finally:
        metadata.drop_all(engine)


def test_a_unit_of_work_writes_its_queue_when_it_commits_and_drops_it_when_it_does_not(engine):
    from sqlalchemy import func, select

    from orglife.common.db import UnitOfWork, insert_later
    from services.members.models import backbone
    new_version = MeetingVersion.__table__.insert()

    def unit():
        return UnitOfWork(session_factory(engine), "members", backbone)

    with unit() as uow:
        insert_later(uow.session, new_version, {"meeting_id": "g", "revision": 1,
                                                "cancelled": False})
        uow.commit()
    with unit() as uow:  # a rollback drops the queue: the unit of work goes on without it
        insert_later(uow.session, new_version, {"meeting_id": "h", "revision": 1,
                                                "cancelled": False})
        uow.rollback()
        insert_later(uow.session, new_version, {"meeting_id": "j", "revision": 1,
                                                "cancelled": False})
        uow.commit()
    with unit() as uow, uow.batch():  # in a batch, at its end
        insert_later(uow.session, new_version, {"meeting_id": "i", "revision": 1,
                                                "cancelled": False})
        uow.commit()
        assert uow.session.scalar(select(func.count()).select_from(MeetingVersion)
                                  .where(MeetingVersion.meeting_id == "i")) == 0
    with session_factory(engine)() as session:
        assert set(session.scalars(select(MeetingVersion.meeting_id))) \
            == {"a", "b", "g", "i", "j"}


def test_insert_rows_stores_what_sqlalchemy_would_and_falls_back_when_it_must(engine):
    """db.insert_rows (write_queued's writer): on SQLite it hands the driver tuples itself,
    converting each column as SQLAlchemy does (dates, instants, booleans, JSON, None); a row
    set it cannot run that way (a Python-side default to fill) goes through SQLAlchemy; rows
    with different columns are written a group of columns at a time, none of their values
    dropped. Either way the stored rows equal SQLAlchemy's own inserts, row by row."""
    import datetime as dt

    from sqlalchemy import (JSON, Boolean, Column, Date, DateTime, Integer, MetaData, String,
                            Table)

    from orglife.common.db import _driver_insert, insert_rows
    metadata = MetaData()

    def table(name):
        return Table(name, metadata, Column("id", String(8), primary_key=True),
                     Column("day", Date), Column("at", DateTime(timezone=True)),
                     Column("flag", Boolean), Column("data", JSON), Column("n", Integer),
                     Column("filled", Integer, default=7))
    ours, theirs = table("rows_ours"), table("rows_theirs")
    metadata.create_all(engine)
    at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    rows = [{"id": "r1", "day": dt.date(2026, 3, 1), "at": at, "flag": True,
             "data": {"出席": ["m1"], "n": 1}, "n": 3, "filled": 1},
            {"id": "r2", "day": None, "at": None, "flag": False, "data": None, "n": None,
             "filled": None}]
    without_default = [{k: v for k, v in row.items() if k != "filled"} | {"id": row["id"] + "d"}
                       for row in rows]
    mixed = [{"id": "m1", "n": 1}, {"id": "m2", "n": 2, "flag": True}]
    # rows sharing one instant and one JSON object (a meeting's lines), another between them:
    # each value converted is its own row's (db._reusing_last)
    later, shared_data = at + dt.timedelta(minutes=1), {"k": 1}
    shared = [{"id": f"s{i}", "at": moment, "flag": flag, "data": data}
              for i, (moment, flag, data) in enumerate([
                  (at, True, shared_data), (at, True, shared_data), (later, False, {"k": 2}),
                  (at, True, shared_data), (None, None, None)])]
    try:
        with engine.begin() as conn:
            for batch in (rows, without_default, shared):
                insert_rows(conn, ours.insert(), batch)
                conn.execute(theirs.insert(), batch)
            insert_rows(conn, ours.insert(), [dict(row) for row in mixed])
            for row in mixed:  # SQLAlchemy's executemany would drop m2's flag
                conn.execute(theirs.insert(), row)
        with engine.connect() as conn:
            def raw(name):
                return conn.exec_driver_sql(
                    f"SELECT id, day, at, flag, data, n, filled FROM {name} ORDER BY id").all()
            assert raw("rows_ours") == raw("rows_theirs")
            assert len(raw("rows_ours")) == 11
            # m1 m2 r1 r1d r2 r2d s0..s4
            assert [row[-1] for row in raw("rows_ours")] == [7, 7, 1, 7, None, 7] + [7] * 5
            assert [row[2] is None for row in raw("rows_ours")[6:]] == [False] * 4 + [True]
            assert raw("rows_ours")[8][2] != raw("rows_ours")[9][2]  # s2 later than s3
        if engine.dialect.name == "sqlite":  # the driver's way, or SQLAlchemy's, as said
            assert _driver_insert(ours.insert(), engine.dialect, tuple(rows[0])) is not None
            assert _driver_insert(ours.insert(), engine.dialect,
                                  tuple(without_default[0])) is None
            assert _driver_insert(ours.insert().returning(ours.c.id), engine.dialect,
                                  tuple(rows[0])) is None  # RETURNING: SQLAlchemy's way
    finally:
        metadata.drop_all(engine)
