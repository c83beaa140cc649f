"""Counting, in the database: additive upserts for the incremental path, and the same tallies
rebuilt from the copy in a few GROUP BY queries for `recalculate` (so both give one answer)."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import and_, case, delete, func, insert, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from .models import ActivityCopy, AttendanceCopy, MeetingCopy, MemberMonth, MemberTally


def add_counts(session, table, keys: tuple[str, ...], counts: tuple[str, ...],
               rows: list[tuple]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE count = count + excluded.count, in chunks; rows that
    reach zero are deleted so that a table holds what a rebuild would hold."""
    if not rows:
        return
    names = keys + counts
    session.execute(_adding_upsert(table, session.get_bind().dialect.name, keys, counts),
                    [dict(zip(names, row)) for row in rows])  # one statement, executemany
    zero = and_(*(table.c[name] == 0 for name in counts))
    session.execute(delete(table).where(zero))


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


def rebuild_year(session, year: int) -> None:
    """Every member's tallies and months of `year`, from the copy (recalculate)."""
    session.execute(delete(MemberTally).where(MemberTally.year == year))
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    session.execute(delete(MemberMonth).where(MemberMonth.month.in_(months)))
    counted = and_(MeetingCopy.year == year, MeetingCopy.logged.is_(True),
                   MeetingCopy.cancelled.is_(False))
    session.execute(insert(MemberTally).from_select(
        ["member_id", "year", "bucket", "status", "count"],
        select(AttendanceCopy.member_id, literal(year), literal("meeting:") + MeetingCopy.type,
               AttendanceCopy.status, func.count())
        .join(MeetingCopy, MeetingCopy.meeting_id == AttendanceCopy.meeting_id)
        .where(counted)
        .group_by(AttendanceCopy.member_id, MeetingCopy.type, AttendanceCopy.status)))
    session.execute(insert(MemberTally).from_select(
        ["member_id", "year", "bucket", "status", "count"],
        select(ActivityCopy.member_id, literal(year), literal("activity:") + ActivityCopy.kind,
               literal("done"), func.count())
        .where(ActivityCopy.year == year)
        .group_by(ActivityCopy.member_id, ActivityCopy.kind)))
    sqlite_db = session.get_bind().dialect.name == "sqlite"

    def month_of(day):
        return func.strftime("%Y-%m", day) if sqlite_db else func.to_char(day, "YYYY-MM")
    # Each attendance line and each heart talk as (member, month, expected, attended, leave),
    # summed per member and month in the database: nothing of it passes through Python.
    lines = union_all(
        select(AttendanceCopy.member_id.label("member_id"),
               month_of(MeetingCopy.held_on).label("month"),
               case((AttendanceCopy.expected.is_(True), 1), else_=0).label("expected"),
               case((AttendanceCopy.status == "present", 1), else_=0).label("attended"),
               case((and_(AttendanceCopy.expected.is_(True), AttendanceCopy.status == "leave"),
                     1), else_=0).label("leave"))
        .join(MeetingCopy, MeetingCopy.meeting_id == AttendanceCopy.meeting_id).where(counted),
        select(ActivityCopy.member_id, month_of(ActivityCopy.held_on), literal(0), literal(1),
               literal(0))
        .where(ActivityCopy.year == year, ActivityCopy.kind == "heart_talk")).subquery()
    session.execute(insert(MemberMonth).from_select(
        ["member_id", "month", "expected", "attended", "leave"],
        select(lines.c.member_id, lines.c.month, func.sum(lines.c.expected),
               func.sum(lines.c.attended), func.sum(lines.c.leave))
        .group_by(lines.c.member_id, lines.c.month)
        # a month of nothing but visits marked absent holds no count: no row, as incrementally
        .having(func.sum(lines.c.expected) + func.sum(lines.c.attended) > 0)))
