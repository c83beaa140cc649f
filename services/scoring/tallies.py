"""Counting, in the database: additive upserts for the incremental path, and the same tallies
rebuilt from the copy in a few GROUP BY queries for `recalculate` (so both give one answer)."""
from __future__ import annotations

import os
from contextlib import suppress
from functools import lru_cache

from sqlalchemy import and_, bindparam, case, column, delete, func, insert, literal, \
    literal_column, or_, select, table
from sqlalchemy.dialects import postgresql, sqlite

from .models import ActivityCopy, AttendanceCopy, MeetingCopy, MemberMonth, MemberTally


def execute_many(connection, stmt, names: tuple[str, ...], rows: list[tuple]) -> None:
    """`stmt` once per row of `rows` (values in the order of `names`). On SQLite the rows go
    to the driver's executemany as they are, the statement compiled once: SQLAlchemy's
    processing of each row's parameters cost more than SQLite's work on it. Only for values
    the driver stores as SQLAlchemy would (text, integers, booleans; not dates)."""
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(stmt, [dict(zip(names, row)) for row in rows])
        return
    sql, order = _compiled(stmt, connection.dialect)
    if order != names:
        at = [names.index(name) for name in order]
        rows = [tuple(row[i] for i in at) for row in rows]
    connection.exec_driver_sql(sql, rows)


@lru_cache(maxsize=64)
def _compiled(stmt, dialect) -> tuple[str, tuple[str, ...]]:
    compiled = stmt.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup)


def add_counts(session, table, keys: tuple[str, ...], counts: tuple[str, ...],
               rows: list[tuple]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE count = count + excluded.count, in chunks; rows that
    reach zero are deleted so that a table holds what a rebuild would hold."""
    if not rows:
        return
    # Key order: two instances upserting overlapping rows lock them in one order on
    # PostgreSQL, so they wait for each other instead of deadlocking.
    rows = sorted(rows, key=lambda row: row[:len(keys)])
    connection = session.connection()
    execute_many(connection, _adding_upsert(table, connection.dialect.name, keys, counts),
                 keys + counts, rows)  # one statement, executemany
    # only a row something was taken from can have reached zero (an amendment, a
    # cancellation): those are looked up by key, the table is not scanned
    lowered = [row[:len(keys)] for row in rows if min(row[len(keys):]) < 0]
    execute_many(connection, _zero_delete(table, keys, counts), keys, lowered)


@lru_cache(maxsize=32)
def _zero_delete(table, keys: tuple[str, ...], counts: tuple[str, ...]):
    return delete(table).where(*(table.c[name] == bindparam(name) for name in keys),
                               *(table.c[name] == literal_column("0") for name in counts))


@lru_cache(maxsize=32)
def _adding_upsert(table, dialect_name: str, keys: tuple[str, ...], counts: tuple[str, ...]):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in counts})


@lru_cache(maxsize=32)
def replacing_upsert(table, dialect_name: str, keys: tuple[str, ...]):
    """INSERT ... ON CONFLICT DO UPDATE every other column: built once, run as executemany."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})


@lru_cache(maxsize=8)
def newer_upsert(table, dialect_name: str, keys: tuple[str, ...], version: str):
    """INSERT ... ON CONFLICT DO UPDATE every other column WHERE the stored `version` is lower
    than the new one, RETURNING the keys of the rows written: a copy never goes back to an
    older revision, and the caller knows which rows changed."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
        where=table.c[version] < stmt.excluded[version]).returning(*(table.c[k] for k in keys))


LINES = table("scoring_lines", column("member_id"), column("type"), column("status"),
              column("expected"), column("month"))


def rebuild_year(session, year: int) -> None:
    """Every member's tallies and months of `year`, from the copy (recalculate), in the
    database: nothing of it passes through Python. The year's attendance lines (a county:
    1.4 million) are joined to their meetings once, into a temporary table read by both
    sums: joined meetings first, as stored, not member by member (on SQLite, a GROUP BY over
    the join made it walk the attendance by member and look each meeting up, twice as slow)."""
    connection = session.connection()
    sqlite_db = connection.dialect.name == "sqlite"

    def month_of(day):
        return func.substr(day, 1, 7) if sqlite_db else func.to_char(day, "YYYY-MM")
    connection.execute(delete(MemberTally).where(MemberTally.year == year))
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    connection.execute(delete(MemberMonth).where(MemberMonth.month.in_(months)))
    joined = select(AttendanceCopy.member_id, MeetingCopy.type, AttendanceCopy.status,
                    AttendanceCopy.expected, month_of(MeetingCopy.held_on).label("month")) \
        .select_from(MeetingCopy) \
        .join(AttendanceCopy, AttendanceCopy.meeting_id == MeetingCopy.meeting_id) \
        .where(MeetingCopy.year == year, MeetingCopy.logged.is_(True),
               MeetingCopy.cancelled.is_(False))
    if sqlite_db:
        # the two GROUP BYs below sort 1.4 million lines: SQLite's sorter may hand sorting
        # runs to helper threads, which took a fifth off them on 2 cores
        # (bench/scoring.py); reset after, the connection goes back to the pool
        connection.exec_driver_sql(f"PRAGMA threads = {_sort_threads()}")
    try:
        _rebuild_lines(connection, year, joined, month_of, sqlite_db)
    finally:
        if sqlite_db:
            with suppress(Exception):  # never in place of the rebuild's own error
                connection.exec_driver_sql("PRAGMA threads = 0")


def _rebuild_lines(connection, year: int, joined, month_of, sqlite_db: bool) -> None:
    """rebuild_year's inserts, from the year's lines in a temporary table."""
    drop = f"DROP TABLE IF EXISTS {'temp' if sqlite_db else 'pg_temp'}.scoring_lines"
    connection.exec_driver_sql(drop)  # left by a recalculation that failed on this connection
    connection.exec_driver_sql("CREATE TEMPORARY TABLE scoring_lines AS " + str(
        joined.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})))
    connection.execute(insert(MemberTally).from_select(
        ["member_id", "year", "bucket", "status", "count"],
        select(LINES.c.member_id, literal(year), literal("meeting:") + LINES.c.type,
               LINES.c.status, func.count())
        # domain.counts: a visitor listed absent is not charged
        .where(or_(LINES.c.expected.is_(True), LINES.c.status != "absent"))
        .group_by(LINES.c.member_id, LINES.c.type, LINES.c.status)))
    connection.execute(insert(MemberTally).from_select(
        ["member_id", "year", "bucket", "status", "count"],
        select(ActivityCopy.member_id, literal(year), literal("activity:") + ActivityCopy.kind,
               literal("done"), func.count())
        .where(ActivityCopy.year == year)
        .group_by(ActivityCopy.member_id, ActivityCopy.kind)))
    # each member's months from their lines: expected at, attended, on leave from; a month
    # of nothing but visits marked absent holds no count, so no row, as incrementally
    connection.execute(insert(MemberMonth).from_select(
        ["member_id", "month", "expected", "attended", "leave"],
        select(LINES.c.member_id, LINES.c.month,
               func.sum(case((LINES.c.expected.is_(True), 1), else_=0)),
               func.sum(case((LINES.c.status == "present", 1), else_=0)),
               func.sum(case((and_(LINES.c.expected.is_(True), LINES.c.status == "leave"), 1),
                             else_=0)))
        .group_by(LINES.c.member_id, LINES.c.month)
        .having(func.sum(case((or_(LINES.c.expected.is_(True), LINES.c.status == "present"),
                               1), else_=0)) > 0)))
    # then each month's heart talks, each one an attended meeting (replica.py), added to
    # the month's row or making one: a few thousand rows (a UNION ALL of them with the lines
    # under one GROUP BY took 2.2 s on the county year, the lines alone 1.4 s)
    dialect = postgresql if not sqlite_db else sqlite
    talks = dialect.insert(MemberMonth).from_select(
        ["member_id", "month", "expected", "attended", "leave"],
        select(ActivityCopy.member_id, month_of(ActivityCopy.held_on), literal(0),
               func.count(), literal(0))
        .where(ActivityCopy.year == year, ActivityCopy.kind == "heart_talk")
        .group_by(ActivityCopy.member_id, month_of(ActivityCopy.held_on)))
    connection.execute(talks.on_conflict_do_update(
        index_elements=["member_id", "month"],
        set_={"attended": MemberMonth.attended + talks.excluded.attended}))
    connection.exec_driver_sql(drop)


def _sort_threads() -> int:
    """Helper threads for SQLite's sorter: one per core, at most 4 (on 2 cores, 2 helpers
    beat 1: the main thread mostly waits on them while merging)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    return min(4, cores)
