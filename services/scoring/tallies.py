"""Counting, in the database: additive upserts for the incremental path, and the same tallies
rebuilt from the copy in a few GROUP BY queries for `recalculate` (so both give one answer)."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import and_, case, delete, func, insert, literal, select
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
    month = func.strftime("%Y-%m", MeetingCopy.held_on) \
        if session.get_bind().dialect.name == "sqlite" \
        else func.to_char(MeetingCopy.held_on, "YYYY-MM")
    expected = func.sum(case((AttendanceCopy.expected.is_(True), 1), else_=0))
    attended = func.sum(case((AttendanceCopy.status == "present", 1), else_=0))
    leave = func.sum(case((and_(AttendanceCopy.expected.is_(True),
                                AttendanceCopy.status == "leave"), 1), else_=0))
    rows = session.execute(
        select(AttendanceCopy.member_id, month, expected, attended, leave)
        .join(MeetingCopy, MeetingCopy.meeting_id == AttendanceCopy.meeting_id)
        .where(counted).group_by(AttendanceCopy.member_id, month)).all()
    talk_month = func.strftime("%Y-%m", ActivityCopy.held_on) \
        if session.get_bind().dialect.name == "sqlite" \
        else func.to_char(ActivityCopy.held_on, "YYYY-MM")
    talks = session.execute(
        select(ActivityCopy.member_id, talk_month, func.count())
        .where(ActivityCopy.year == year, ActivityCopy.kind == "heart_talk")
        .group_by(ActivityCopy.member_id, talk_month)).all()
    add_counts(session, MemberMonth.__table__, ("member_id", "month"),
               ("expected", "attended", "leave"),
               [tuple(row) for row in rows] + [(m, month, 0, n, 0) for m, month, n in talks])
