"""scoring's use cases: keeping the figures up to date as events arrive, the daily run that
raises time-driven alerts, recalculation, and the reads (each checks the caller's scope).

The rules are in domain.py; this module loads what they need from the copy (replica.py) and
stores what they return: member scores from the tallies, branch figures from the branch's
meetings, at-risk streaks from the members' months.
"""
from __future__ import annotations

import itertools
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import delete, func, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from orglife.common.auth import Principal
from orglife.common.clock import iso
from orglife.common.db import UnitOfWork, under
from orglife.common.errors import NotFound, ValidationError
from orglife.common.rules import Rules
from orglife.common.vocabulary import ACTIVE_STATUSES

from . import domain
from .models import (
    ActivityCopy, Alert, AttendanceCopy, BranchStat, ClosedYear, DailyRun, Dirty, MeetingCopy, MemberMonth,
    MemberRisk, MemberScore, MemberState, MemberTally, OrgCopy,
)
from .replica import Changes, apply_pending
from .schemas import KINDS
from .tallies import execute_many, rebuild_year, replacing_upsert


def path_ids(path: str | None) -> list[str]:
    return [part for part in (path or "").split("/") if part]


def year_end(year: int, today: date) -> date:
    """The day a year's figures are shown as of: today, or the year's last day once past
    (`domain.year_closed` then counts every period of it as ended)."""
    return min(today, date(year, 12, 31))


def counted_day(year: int, as_of: date | None, today: date) -> tuple[date, bool]:
    """(the day a year's figures are shown as of, whether the year is closed) for a read,
    refusing a year that has not begun by the day asked about: the field named is the one
    the caller got wrong (`as_of` when given, else `year`)."""
    day = as_of or today
    if day.year < year:
        if as_of is not None:
            raise ValidationError.field("as_of", f"{as_of.isoformat()} is before {year}")
        raise ValidationError.field("year", f"{year} has not begun (today is "
                                            f"{today.isoformat()})")
    return year_end(year, day), domain.year_closed(year, day)


def _upsert(session, table, keys: tuple[str, ...], rows: list[dict]) -> None:
    if rows:
        rows = sorted(rows, key=lambda row: tuple(row[key] for key in keys))  # see add_counts
        connection = session.connection()
        connection.execute(replacing_upsert(table, connection.dialect.name, keys), rows)


def _stream(session, query, size: int = 5000):
    """The rows of a large query as plain tuples, fetched `size` at a time from the driver's
    own cursor (SQLAlchemy's row objects cost more than the work done with them here). On
    PostgreSQL a named (server-side) cursor: psycopg2's plain cursor would fetch every row
    into memory at execute."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect,
                             compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"scoring_stream_{next(_cursor_names)}")
        cursor.itersize = size
    else:
        cursor = driver.cursor()
    try:
        if connection.dialect.paramstyle == "qmark":
            cursor.execute(str(compiled), [params[name] for name in compiled.positiontup])
        else:
            cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(size):
            yield from rows
    finally:
        cursor.close()


_cursor_names = itertools.count(1)


def _rows(session, query) -> list[tuple]:
    """The rows of a query as the driver gives them (plain tuples, no SQLAlchemy result
    processing), fetched at once from the executed statement's own cursor: for the drain's and
    the reads' large loads, where building SQLAlchemy rows and converting their values cost
    more than the query. Values come as the driver stores them: on SQLite a date is its ISO
    text (see `_day`) and a boolean 0 or 1."""
    result = session.connection().execute(query)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _day(value):
    """A date as `_rows` gives it (ISO text on SQLite) as a date."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _all(session, query) -> list:
    """The rows of a query, through Core (no ORM loading) and fetched at once (iterating a
    Core result fetches row by row, which costs more on SQLite)."""
    return session.connection().execute(query).all()


def _chunks(items, size: int = 500):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- dirty marks and the drain ----------------------------------------------------------------
def mark_dirty(session, changes: Changes, tz) -> None:
    """In the consumer's transaction: the batch's meetings and activities into the copy, its
    tallies, and marks on what they made stale."""
    apply_pending(session, changes, tz)
    changes.flush(session)
    rows = [("member", m, y) for y, members in changes.members.items() for m in members]
    rows += [("branch", b, y) for y, branches in changes.branches.items() for b in branches]
    rows += [("risk", m, 0) for m in changes.risk_members]
    rows.sort()  # one lock order
    connection = session.connection()
    execute_many(connection, _marking(connection.dialect.name), ("kind", "ident", "year"), rows)


@lru_cache(maxsize=4)
def _marking(dialect_name: str):
    """SQLite: INSERT .. ON CONFLICT DO NOTHING (transactions are serialized). PostgreSQL:
    ON CONFLICT DO UPDATE, which locks a mark that is already there until this consumer
    commits: a drain claiming marks skips it (SKIP LOCKED) and leaves it for the next drain,
    which then sees this consumer's change; a mark a drain has just claimed (deleted, not yet
    committed) makes this INSERT wait, then insert it anew. DO NOTHING would neither lock nor
    wait, and the drain would delete the mark of a change it never saw."""
    if dialect_name == "postgresql":
        stmt = postgresql.insert(Dirty)
        return stmt.on_conflict_do_update(index_elements=["kind", "ident", "year"],
                                          set_={"year": stmt.excluded.year})
    return sqlite.insert(Dirty).on_conflict_do_nothing(index_elements=["kind", "ident", "year"])


def claim_marks(session, limit: int = 20_000, risks: bool = True) -> list[tuple]:
    """Take up to `limit` marks: deleted first, in the drain's transaction, then recomputed:
    DELETE .. WHERE (key) IN (SELECT key .. LIMIT) RETURNING. PostgreSQL: the SELECT is
    FOR UPDATE SKIP LOCKED, so that instances share the marks and a mark a consumer holds
    (see `_marking`) stays for later; a change arriving during the drain leaves a mark of
    its own. SQLite: the drain holds the write lock from its first statement, nothing
    arrives meanwhile."""
    keys = select(Dirty.kind, Dirty.ident, Dirty.year).limit(limit)
    if not risks:
        keys = keys.where(Dirty.kind != "risk")
    if session.get_bind().dialect.name == "postgresql":
        keys = keys.with_for_update(skip_locked=True)
    return session.connection().execute(
        delete(Dirty).where(tuple_(Dirty.kind, Dirty.ident, Dirty.year).in_(keys))
        .returning(Dirty.kind, Dirty.ident, Dirty.year)).all()


def drain(uow: UnitOfWork, rules: Rules, today: date, risks: bool = True,
          limit: int = 20_000) -> dict:
    """Recompute everything marked stale since the last drain, in bulk; one `scores_changed`
    per year. Under a burst, many batches' marks are drained at once (a member touched by
    forty meetings is scored once). Streaks only when `risks` (the service drains those less
    often: they raise alerts, nothing waits on them within the second)."""
    marks = claim_marks(uow.session, limit, risks)
    if not marks:
        return {}
    # "more": it stopped at its limit with marks left (DrainPace drains again a tick later)
    return {**recompute_marked(uow, rules, today, marks), "more": len(marks) >= limit}


def recompute_marked(uow: UnitOfWork, rules: Rules, today: date, marks) -> dict:
    session = uow.session
    members: dict[int, list] = defaultdict(list)
    branches: dict[int, list] = defaultdict(list)
    risky = []
    for kind, ident, year in marks:
        (members[year] if kind == "member" else branches[year] if kind == "branch"
         else risky).append(ident)
    for year in sorted(set(members) | set(branches)):
        recompute_members(session, rules, year, sorted(members.get(year, ())))
        recompute_branches(session, rules, year, sorted(branches.get(year, ())),
                           year_end(year, today), domain.year_closed(year, today))
        uow.emit("scores_changed", {"year": year, "member_ids": sorted(members.get(year, ())),
                                    "branch_ids": sorted(branches.get(year, ()))})
    recompute_risks(uow, rules, sorted(risky), today)
    return {"members": sum(map(len, members.values())),
            "branches": sum(map(len, branches.values())), "risks": len(risky)}


# -- member scores ------------------------------------------------------------------------------
# member_score holds a row per member and year with lines (a tally) that year. A member without
# lines has the base score: no row is stored for them, by the incremental path or by
# recalculate alike, and the reads (`year_scores`) give it to every member of that year.
def recompute_members(session, rules: Rules, year: int, member_ids: list[str]) -> None:
    """Scores from the tallies, 2,000 members at a time (memory stays flat for a county)."""
    for chunk in _chunks(member_ids, 2000):
        _recompute_members(session, rules, year, chunk)


def _recompute_members(session, rules: Rules, year: int, member_ids: list[str]) -> None:
    tallies: dict[str, dict] = defaultdict(dict)
    states: dict[str, tuple] = {}
    for chunk in _chunks(member_ids):
        for member_id, bucket, status, count in _rows(session,
                select(MemberTally.member_id, MemberTally.bucket, MemberTally.status,
                       MemberTally.count)
                .where(MemberTally.year == year, MemberTally.member_id.in_(chunk))):
            tallies[member_id][(bucket, status)] = count
        for member_id, status, path in _rows(session,
                select(MemberState.member_id, MemberState.status, OrgCopy.path)
                .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id)
                .where(MemberState.member_id.in_(chunk))):
            states[member_id] = (status, path)
    rows = [_score_row(rules, year, member_id, tallies[member_id],
                       *states.get(member_id, ("formal", None)))
            for member_id in member_ids if member_id in tallies]
    gone = [member_id for member_id in member_ids if member_id not in tallies]
    for chunk in _chunks(gone):  # no line left this year (a cancellation): the base, no row
        session.connection().execute(delete(MemberScore).where(
            MemberScore.year == year, MemberScore.member_id.in_(chunk)))
    _upsert_scores(session, rows)


SCORE_COLUMNS = ("member_id", "year", "score", "raw", "grade", "recommendation", "branch_path",
                 "rules_version")


def _score_row(rules: Rules, year: int, member_id: str, tally: dict, status: str,
               path: str | None, version: str | None = None) -> tuple:
    score = domain.score_from_tally(rules, tally, status)
    return (member_id, year, score.score, score.raw, score.grade, score.recommendation, path,
            version or rules.version)


def _upsert_scores(session, rows: list[tuple]) -> None:
    connection = session.connection()
    rows = sorted(rows, key=lambda row: row[:2])  # member_id, year: see tallies.add_counts
    execute_many(connection, replacing_upsert(MemberScore.__table__, connection.dialect.name,
                                              ("member_id", "year")), SCORE_COLUMNS, rows)


def recompute_all_members(session, rules: Rules, year: int) -> list[str]:
    """Every member's score of a year (recalculate): the tallies streamed in member order
    in one query, the scores written 2,000 at a time. Returns the members scored."""
    states = {member_id: (status, path) for member_id, status, path in _all(session,
        select(MemberState.member_id, MemberState.status, OrgCopy.path)
        .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id))}
    scored: list[str] = []
    rows: list[dict] = []
    version = rules.version

    def score(member_id: str, tally: dict) -> None:
        rows.append(_score_row(rules, year, member_id, tally,
                               *states.get(member_id, ("formal", None)), version))
        scored.append(member_id)
        if len(rows) >= 2000:
            _upsert_scores(session, rows)
            rows.clear()
    current, tally = None, {}
    for member_id, bucket, status, count in _stream(session, (
            select(MemberTally.member_id, MemberTally.bucket, MemberTally.status,
                   MemberTally.count).where(MemberTally.year == year)
            .order_by(MemberTally.member_id))):
        if member_id != current:
            if current is not None:
                score(current, tally)
            current, tally = member_id, {}
        tally[(bucket, status)] = count
    if current is not None:
        score(current, tally)
    _upsert_scores(session, rows)
    return scored


def year_scores(session, rules: Rules, year: int, *where) -> list:
    """The scores of a year of the active members that `where` selects (on MemberState and
    their branch's OrgCopy): the stored score of a member with lines that year, the base for
    one without who was a member by the year's end (joined_on, when known, not after it).
    Rankings and year_graded read this, so recalculate and the incremental path answer alike.
    Rows of (member_id, name, branch_id, status, score, grade, recommendation)."""
    end = date(year, 12, 31)
    rows = _all(session,
        select(MemberState.member_id, MemberState.name, MemberState.branch_id,
               MemberState.status, MemberScore.score, MemberScore.grade,
               MemberScore.recommendation)
        .join(OrgCopy, OrgCopy.org_id == MemberState.branch_id)
        .outerjoin(MemberScore, (MemberScore.member_id == MemberState.member_id)
                   & (MemberScore.year == year))
        .where(MemberState.status.in_(ACTIVE_STATUSES), *where,
               or_(MemberScore.member_id.is_not(None), MemberState.joined_on.is_(None),
                   MemberState.joined_on <= end)))
    base = {status: domain.score_from_tally(rules, {}, status) for status in ACTIVE_STATUSES}
    return [YearScore(*row) if row.score is not None else YearScore(
        *row[:4], base[row.status].score, base[row.status].grade,
        base[row.status].recommendation) for row in rows]


class YearScore(NamedTuple):
    member_id: str
    name: str
    branch_id: str
    status: str
    score: int
    grade: str | None
    recommendation: str | None


def member_lines(session, member_id: str, year: int) -> list[domain.Participation]:
    """A member's year, line by line, from the copy."""
    lines = [domain.Participation("meeting", type_, ref, held_on, status, bool(remote),
                                  branch_id, bool(expected))
             for type_, ref, held_on, status, remote, branch_id, expected in session.execute(
                 select(MeetingCopy.type, MeetingCopy.meeting_id, MeetingCopy.held_on,
                        AttendanceCopy.status, AttendanceCopy.remote, MeetingCopy.branch_id,
                        AttendanceCopy.expected)
                 .join(MeetingCopy, MeetingCopy.meeting_id == AttendanceCopy.meeting_id)
                 .where(AttendanceCopy.member_id == member_id, MeetingCopy.year == year,
                        MeetingCopy.logged.is_(True), MeetingCopy.cancelled.is_(False)))]
    lines += [domain.Participation("activity", kind, ref, held_on, "done", False, branch_id)
              for kind, ref, held_on, branch_id in session.execute(
                  select(ActivityCopy.kind, ActivityCopy.activity_id, ActivityCopy.held_on,
                         ActivityCopy.branch_id)
                  .where(ActivityCopy.member_id == member_id, ActivityCopy.year == year))]
    return lines


# -- branch figures -----------------------------------------------------------------------------
@dataclass
class BranchInputs:
    """What one branch's figures are computed from, loaded for many branches at once."""

    org: object  # a row of org_copy: org_id, name, category, path, registered_on
    groups: list = field(default_factory=list)
    groups_registered: dict = field(default_factory=dict)
    committee: bool = False
    meetings: list = field(default_factory=list)
    last_meeting_on: date | None = None

    @property
    def facts(self) -> domain.Branch:
        return domain.Branch(self.org.org_id, tuple(sorted(self.groups)), self.committee,
                             self.org.registered_on,
                             tuple(sorted(self.groups_registered.items())))


def branch_inputs(session, branch_ids, year: int, as_of: date) -> dict[str, BranchInputs]:
    """Five queries per 500 branches, whatever their meetings; only meetings held by `as_of`
    are loaded (a past day's overview of a county read the whole year before)."""
    out: dict[str, BranchInputs] = {}
    for chunk in _chunks(branch_ids):
        for org in _all(session, select(OrgCopy.org_id, OrgCopy.name, OrgCopy.category,
                                          OrgCopy.path, OrgCopy.registered_on)
                                   .where(OrgCopy.org_id.in_(chunk), OrgCopy.kind == "branch")):
            out[org.org_id] = BranchInputs(org)
        chunk = [b for b in chunk if b in out]
        for group_id, parent_id, registered_on in _all(session,
                select(OrgCopy.org_id, OrgCopy.parent_id, OrgCopy.registered_on)
                .where(OrgCopy.kind == "group", OrgCopy.parent_id.in_(chunk))):
            out[parent_id].groups.append(group_id)
            out[parent_id].groups_registered[group_id] = registered_on
        for (branch_id,) in _all(session,
                select(MemberState.branch_id).distinct()
                .where(MemberState.branch_id.in_(chunk), MemberState.committee_member.is_(True),
                       MemberState.status.in_(ACTIVE_STATUSES))):
            out[branch_id].committee = True
        days: dict[str, date] = {}  # held_on's text → date, parsed once per day
        for (branch_id, meeting_id, type_, held_on, group_id, logged, cancelled, quorum_met,
             expected, present) in _rows(session,
                select(MeetingCopy.branch_id, MeetingCopy.meeting_id, MeetingCopy.type,
                       MeetingCopy.held_on, MeetingCopy.group_id, MeetingCopy.logged,
                       MeetingCopy.cancelled, MeetingCopy.quorum_met, MeetingCopy.expected,
                       MeetingCopy.present)
                .where(MeetingCopy.branch_id.in_(chunk), MeetingCopy.year == year,
                       MeetingCopy.held_on <= as_of)):  # later ones count nowhere (domain.slots)
            day = days.get(held_on) if isinstance(held_on, str) else held_on
            if day is None:
                day = days[held_on] = date.fromisoformat(held_on)
            inputs = out[branch_id]
            inputs.meetings.append(domain.MeetingFacts(
                meeting_id, type_, day, group_id, bool(logged and not cancelled and quorum_met),
                bool(cancelled or not logged), expected, present))
            # the newest meeting held by `as_of`: a meeting of `year` held by then is newer
            # than any of an earlier year (as_of is never after the year's end, year_end)
            if logged and not cancelled and day <= as_of and (
                    inputs.last_meeting_on is None or day > inputs.last_meeting_on):
                inputs.last_meeting_on = day
        # the others' newest meeting is of an earlier year, if any
        earlier = [b for b in chunk if out[b].last_meeting_on is None or as_of.year > year]
        if earlier:
            for branch_id, last in _rows(session,
                    select(MeetingCopy.branch_id, func.max(MeetingCopy.held_on))
                    .where(MeetingCopy.branch_id.in_(earlier), MeetingCopy.logged.is_(True),
                           MeetingCopy.cancelled.is_(False), MeetingCopy.held_on <= as_of)
                    .group_by(MeetingCopy.branch_id)):
                last = _day(last)
                if out[branch_id].last_meeting_on is None or last > out[branch_id].last_meeting_on:
                    out[branch_id].last_meeting_on = last
    return out


def figures_of(rules: Rules, inputs: BranchInputs, year: int, as_of: date,
               closed: bool = False) -> dict:
    """The compliance record of SPEC §4 for one branch and year, as of a day (`closed`: the
    year is over, every period of it counted as ended)."""
    result = domain.compliance(rules, inputs.facts, inputs.meetings, year, as_of, closed)
    last, org = inputs.last_meeting_on, inputs.org
    silent = domain.silence(rules, last, org.registered_on, as_of)
    return {"branch_id": org.org_id, "name": org.name, "category": org.category,
            "year": year, "as_of": as_of.isoformat(), "required": result.required,
            "met": result.met, "held": result.held, "compliance": result.compliance,
            "attendance_rate": result.attendance_rate, "score": result.score,
            "light": domain.light(rules, result.compliance, silent is not None,
                                  bool(result.due_soon)),
            "silent_days": silent, "last_meeting_on": last.isoformat() if last else None,
            "by_type": result.by_type, "missed": result.missed, "due_soon": result.due_soon,
            "closed": closed, "rules_version": rules.version}


def branch_figures(session, rules: Rules, branch_id: str, year: int, as_of: date,
                   closed: bool = False) -> dict:
    return figures_of(rules, branch_inputs(session, [branch_id], year, as_of)[branch_id],
                      year, as_of, closed)


def recompute_branches(session, rules: Rules, year: int, branch_ids: list[str],
                       as_of: date, closed: bool = False) -> dict[str, BranchInputs]:
    inputs = branch_inputs(session, branch_ids, year, as_of)
    rows = []
    for branch_id, branch in inputs.items():
        figures = figures_of(rules, branch, year, as_of, closed)
        rows.append({"branch_id": branch_id, "year": year, "as_of": as_of, "closed": closed,
                     "category": branch.org.category, "branch_path": branch.org.path,
                     "compliance": figures["compliance"],
                     "attendance_rate": figures["attendance_rate"],
                     "score": figures["score"], "light": figures["light"],
                     "figures": figures, "rules_version": rules.version})
    _upsert(session, BranchStat.__table__, ("branch_id", "year"), rows)
    return inputs


# -- members at risk ------------------------------------------------------------------------------
def risk_of(rules: Rules, member_id: str, name: str, branch_id: str, status: str,
            joined_on: date | None, months: dict[str, tuple], as_of: date) -> dict | None:
    """The at-risk record of a member as of a day (their complete months since joining,
    newest first), or None without a streak."""
    if status not in ACTIVE_STATUSES:
        return None
    current = f"{as_of.year}-{as_of.month:02d}"
    since = f"{joined_on.year}-{joined_on.month:02d}" if joined_on else ""
    missed = domain.streak([domain.Month(month, *counts) for month, counts in months.items()
                            if since <= month < current])
    if not missed:
        return None
    return {"member_id": member_id, "name": name, "branch_id": branch_id,
            "months": len(missed), "level": domain.risk_level(rules, len(missed)),
            "missed": missed}


def live_risks(session, rules: Rules, org_id: str, day: date):
    """The streaks of every member under `org_id` as of `day`, computed from the months
    (what the daily run stores; a past day, or a day the run has not reached, asks this).
    Only the members who may have a streak that day (`streak_candidates`) are loaded: judging
    all 35,000 of a county took 2 s of a past day's overview."""
    member_ids = session.scalars(select(MemberState.member_id).join(
        OrgCopy, OrgCopy.org_id == MemberState.branch_id).where(
            under(OrgCopy.path, org_id),
            MemberState.member_id.in_(streak_candidates(day)))).all()
    for chunk in _chunks(member_ids):
        states, months = _risk_inputs(session, chunk)
        for state in states.values():
            record = risk_of(rules, state.member_id, state.name, state.branch_id,
                             state.status, state.joined_on, months[state.member_id], day)
            if record:
                yield record


def _risk_inputs(session, member_ids):
    states = {row.member_id: row for row in _all(session,
        select(MemberState.member_id, MemberState.name, MemberState.branch_id,
               MemberState.status, MemberState.joined_on)
        .where(MemberState.member_id.in_(member_ids)))}
    months: dict[str, dict] = defaultdict(dict)
    for member_id, month, expected, attended, leave in _all(session,
            select(MemberMonth.member_id, MemberMonth.month, MemberMonth.expected,
                   MemberMonth.attended, MemberMonth.leave)
            .where(MemberMonth.member_id.in_(member_ids))):
        months[member_id][month] = (expected, attended, leave)
    return states, months


def recompute_risks(uow: UnitOfWork, rules: Rules, member_ids: list[str], as_of: date) -> None:
    """The streaks of the members a drain found marked: only those who may have one
    (`streak_candidates`, asked of the database) are loaded and judged; the others have
    none, and a streak stored for them is cleared. (Loading every marked member's months
    was half of each drain under a burst: nearly everyone attended last month.)"""
    session = uow.session
    for chunk in _chunks(member_ids):
        candidates = set(session.scalars(streak_candidates(as_of).where(
            MemberMonth.member_id.in_(chunk)).distinct()))
        clear = [member_id for member_id in chunk if member_id not in candidates]
        chunk = [member_id for member_id in chunk if member_id in candidates]
        states, months = _risk_inputs(session, chunk) if chunk else ({}, {})
        paths = dict(_all(session, select(OrgCopy.org_id, OrgCopy.path).where(
            OrgCopy.org_id.in_({s.branch_id for s in states.values()})))) if states else {}
        raised = {key for (key,) in _all(session, select(Alert.key).where(
            Alert.kind == "member_at_risk", Alert.member_id.in_(chunk)))} if chunk else set()
        rows = []
        for member_id in chunk:
            state = states.get(member_id)
            record = risk_of(rules, member_id, state.name, state.branch_id, state.status,
                             state.joined_on, months[member_id], as_of) if state else None
            if record is None:
                clear.append(member_id)
                continue
            rows.append({"member_id": member_id, "branch_id": state.branch_id,
                         "branch_path": paths.get(state.branch_id) or "",
                         "months": record["months"], "level": record["level"],
                         "missed": record["missed"], "as_of": as_of})
            for level in domain.levels_reached(rules, record["months"]):
                if risk_key(record, level) not in raised:
                    raise_member_at_risk(uow, record, level, paths.get(state.branch_id), as_of)
        if clear:
            session.connection().execute(delete(MemberRisk).where(MemberRisk.member_id.in_(clear)))
        _upsert(session, MemberRisk.__table__, ("member_id",), rows)


def streak_candidates(as_of: date):
    """The members who may have a streak as of `as_of`, as a subquery for IN: a complete
    month missed (expected, none attended, not on leave for all) newer than their newest
    complete month attended. A superset of those `risk_of` finds (it also drops the months
    before joining), selected in the database: a county's members nearly all attended
    last month, and judging every one of them in Python was most of the daily run."""
    current = f"{as_of.year}-{as_of.month:02d}"
    month, attended = MemberMonth.__table__, MemberMonth.__table__.alias("attended_month")
    newest_attended = select(func.max(attended.c.month)).where(
        attended.c.member_id == month.c.member_id, attended.c.attended > 0,
        attended.c.month < current).scalar_subquery()
    return select(month.c.member_id).where(
        month.c.attended == 0, month.c.expected > month.c.leave, month.c.month < current,
        month.c.month > func.coalesce(newest_attended, ""))


def recompute_all_risks(uow: UnitOfWork, rules: Rules, as_of: date) -> None:
    """Every member's streak (the daily run, recalculate): the members who may have one
    (`streak_candidates`), their months streamed in member order in one query; only members
    with a streak are kept."""
    session = uow.session
    candidates = streak_candidates(as_of)
    states = {row.member_id: row for row in _all(session,
        select(MemberState.member_id, MemberState.name, MemberState.branch_id,
               MemberState.status, MemberState.joined_on, OrgCopy.path)
        .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id)
        .where(MemberState.status.in_(ACTIVE_STATUSES),
               MemberState.member_id.in_(candidates)))}
    raised = {key for (key,) in _all(session,
        select(Alert.key).where(Alert.kind == "member_at_risk"))}
    session.connection().execute(delete(MemberRisk))
    rows: list[dict] = []

    def judge(member_id: str, months: dict) -> None:
        state = states.get(member_id)
        if state is None:
            return
        record = risk_of(rules, member_id, state.name, state.branch_id, state.status,
                         state.joined_on, months, as_of)
        if record is None:
            return
        rows.append({"member_id": member_id, "branch_id": state.branch_id,
                     "branch_path": state.path or "", "months": record["months"],
                     "level": record["level"], "missed": record["missed"], "as_of": as_of})
        for level in domain.levels_reached(rules, record["months"]):
            if risk_key(record, level) not in raised:
                raise_member_at_risk(uow, record, level, state.path, as_of)
    current, months = None, {}
    for member_id, month, expected, attended, leave in _stream(session, (
            select(MemberMonth.member_id, MemberMonth.month, MemberMonth.expected,
                   MemberMonth.attended, MemberMonth.leave)
            .where(MemberMonth.member_id.in_(candidates))
            .order_by(MemberMonth.member_id))):
        if member_id != current:
            if current is not None:
                judge(current, months)
            current, months = member_id, {}
        months[month] = (expected, attended, leave)
    if current is not None:
        judge(current, months)
    for chunk in _chunks(rows, 2000):
        _upsert(session, MemberRisk.__table__, ("member_id",), chunk)


def missed_meetings(session, member_id: str, months: list[str]) -> list[dict]:
    """Per missed month, the meetings the member was expected at and missed."""
    wanted = set(months)
    found: dict[str, list] = {month: [] for month in months}
    for meeting_id, type_, held_on, branch_id in session.execute(
            select(MeetingCopy.meeting_id, MeetingCopy.type, MeetingCopy.held_on,
                   MeetingCopy.branch_id)
            .join(AttendanceCopy, AttendanceCopy.meeting_id == MeetingCopy.meeting_id)
            .where(AttendanceCopy.member_id == member_id, AttendanceCopy.expected.is_(True),
                   AttendanceCopy.status == "absent", MeetingCopy.logged.is_(True),
                   MeetingCopy.cancelled.is_(False))
            .order_by(MeetingCopy.held_on)):
        month = held_on.strftime("%Y-%m")
        if month in wanted:
            found[month].append({"meeting_id": meeting_id, "type": type_,
                                 "date": held_on.isoformat(), "branch_id": branch_id})
    return [{"month": month, "meetings": found[month]} for month in months]


# -- alerts ----------------------------------------------------------------------------------------
def raise_alert(uow: UnitOfWork, key: str, kind: str, data: dict, branch_id: str | None,
                member_id: str | None, path: str | None, on: date) -> bool:
    """Store the alert and announce it, once per occurrence (`key`): a second instance or a
    second run inserting the same key changes nothing and announces nothing."""
    session = uow.session
    inserted = session.connection().execute(_raising(session.get_bind().dialect.name), {
        "key": key, "kind": kind, "branch_id": branch_id, "member_id": member_id,
        "branch_path": path, "data": data, "raised_on": on,
        "raised_at": uow.clock.now()}).rowcount
    if inserted:
        uow.emit(kind, data)
    return bool(inserted)


@lru_cache(maxsize=4)
def _raising(dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(Alert).on_conflict_do_nothing(index_elements=["key"])


def risk_key(record: dict, level: str) -> str:
    # One streak is one occurrence: it keeps its oldest missed month as it grows.
    return f"risk|{record['member_id']}|{level}|{record['missed'][-1]}"


def raise_member_at_risk(uow: UnitOfWork, record: dict, level: str, path: str | None,
                         on: date) -> bool:
    data = {"member_id": record["member_id"], "name": record["name"],
            "branch_id": record["branch_id"], "months": record["months"], "level": level,
            "months_list": missed_meetings(uow.session, record["member_id"], record["missed"])}
    return raise_alert(uow, risk_key(record, level), "member_at_risk", data,
                       record["branch_id"], record["member_id"], path, on)


DAILY_LOCK = zlib.crc32(b"orglife-scoring:daily")
REBUILD_LOCK = zlib.crc32(b"orglife-scoring:rebuild")


def rebuild_lock(session, exclusive: bool = False) -> None:
    """recalculate deletes a year's tallies and inserts them anew from the copy: on
    PostgreSQL it holds this lock exclusively for its transaction, and every consumer batch
    and drain holds it shared, so they wait for a rebuild (and it for them) instead of one
    failing on the other's rows or the rebuild missing rows committed meanwhile. SQLite's
    writers are serialized already (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {function}(:key)"), {"key": REBUILD_LOCK})


def daily_lock(session, wait: bool = True) -> bool:
    """One daily job at a time across instances, for the rest of the transaction: PostgreSQL
    takes a transaction advisory lock (`wait=False`: False at once when another instance holds
    it); SQLite's transactions already hold the write lock from their start (BEGIN
    IMMEDIATE), so the first statement serializes them."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        taken = session.execute(text(f"SELECT {function}(:key)"), {"key": DAILY_LOCK}).scalar()
        return wait or bool(taken)
    session.execute(select(DailyRun.id).limit(1))  # takes SQLite's write lock
    return True


def daily(uow: UnitOfWork, rules: Rules, today: date) -> dict:
    """Once a day: a year that closed and was not judged yet (its last periods overdue, its
    grades announced), then every branch's figures as of today, overdue, due-soon and silent
    branches, every member's streak (a month ending changes them). Alerts already raised stay
    quiet. Two instances never run it at once (`daily_lock`)."""
    session = uow.session
    daily_lock(session)
    branch_ids = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    raised = dict.fromkeys(("branch_overdue", "branch_due_soon", "branch_silent",
                            "member_at_risk", "year_graded"), 0)
    before = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == "member_at_risk"))
    for year in unjudged_years(session, today):
        judge_closed_year(uow, rules, year, today, branch_ids, raised)
    year = today.year
    for branch_id, branch in recompute_branches(session, rules, year, list(branch_ids),
                                                today).items():
        raised["branch_overdue"] += _raise_overdue(uow, rules, year, branch, today, False)
        for slot in domain.due_soon(rules, branch.facts, branch.meetings, year, today):
            data = {"branch_id": branch_id, "type": slot["type"], "period": slot["period"]}
            if slot["group_id"]:
                data["group_id"] = slot["group_id"]
            data["due_on"] = slot["due"]
            raised["branch_due_soon"] += raise_alert(
                uow, f"due|{branch_id}|{slot['type']}|{slot['period']}|{slot['group_id'] or ''}",
                "branch_due_soon", data, branch_id, None, branch.org.path, today)
        last, registered = branch.last_meeting_on, branch.org.registered_on
        days = domain.silence(rules, last, registered, today)
        if days is None:
            continue
        since = last or registered
        step = days // rules.silent_branch_days  # again every further stretch of silence
        data = {"branch_id": branch_id, "days": days,
                "last_meeting_at": last.isoformat() if last else None}
        raised["branch_silent"] += raise_alert(
            uow, f"silent|{branch_id}|{since.isoformat()}|{step}", "branch_silent", data,
            branch_id, None, branch.org.path, today)
    members = session.scalar(select(func.count()).select_from(MemberState).where(
        MemberState.status.in_(ACTIVE_STATUSES)))
    recompute_all_risks(uow, rules, today)
    raised["member_at_risk"] = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == "member_at_risk")) - before
    run = session.get(DailyRun, 1)
    if run is None:
        session.add(DailyRun(id=1, day=today, rules_digest=rules.digest))
    else:
        run.day = max(run.day, today)
        run.rules_digest = run.rules_digest or rules.digest  # a recalculation changes it
    return {"day": today.isoformat(), "branches": len(branch_ids), "members": members,
            "raised": raised}


def restore_today(uow: UnitOfWork, rules: Rules, earlier: date, today: date) -> None:
    """After a daily run for an earlier day: the branch figures it stored (of that day's year
    and of this one) and every member's stored streak as of today again, as the incremental
    path keeps them (alerts that today's streaks raise are due today anyway)."""
    session = uow.session
    branch_ids = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    for year in sorted({earlier.year, today.year}):
        recompute_branches(session, rules, year, list(branch_ids), year_end(year, today),
                           domain.year_closed(year, today))
    recompute_all_risks(uow, rules, today)


def _raise_overdue(uow: UnitOfWork, rules: Rules, year: int, branch: BranchInputs,
                   today: date, closed: bool) -> int:
    raised = 0
    branch_id = branch.org.org_id
    for slot in domain.overdue(rules, branch.facts, branch.meetings, year,
                               year_end(year, today), closed):
        data = {"branch_id": branch_id, "type": slot["type"], "period": slot["period"]}
        if slot["group_id"]:
            data["group_id"] = slot["group_id"]
        key = f"overdue|{branch_id}|{slot['type']}|{slot['period']}|{slot['group_id'] or ''}"
        raised += raise_alert(uow, key, "branch_overdue", data, branch_id, None,
                              branch.org.path, today)
    return raised


def unjudged_years(session, today: date) -> list[int]:
    """The year before today's, until a daily run has judged it closed: the first daily run
    after New Year does it, or the next one when that one did not run or failed."""
    year = today.year - 1
    return [] if session.get(ClosedYear, year) is not None else [year]


def judge_closed_year(uow: UnitOfWork, rules: Rules, year: int, today: date, branch_ids,
                      raised: dict) -> None:
    """A year once it is over: every branch's figures with every period ended (December,
    the fourth quarter and the year's own slots now count), overdue alerts for the slots that
    ended unmet, and one year_graded per branch registered before the year ended, with its
    members' scores, grades and recommendations (`year_scores`: as member_score gives)."""
    session = uow.session
    end = date(year, 12, 31)
    branches = recompute_branches(session, rules, year, list(branch_ids), end, closed=True)
    for branch in branches.values():
        raised["branch_overdue"] += _raise_overdue(uow, rules, year, branch, today, True)
    graded = [b for b in branches.values() if domain.alerts_apply(b.facts, end)]
    by_branch: dict[str, list] = defaultdict(list)
    for chunk in _chunks([b.org.org_id for b in graded]):
        for row in year_scores(session, rules, year, MemberState.branch_id.in_(chunk)):
            by_branch[row.branch_id].append(row)
    for branch in graded:
        branch_id = branch.org.org_id
        rows = sorted(by_branch.get(branch_id, ()), key=lambda r: r.member_id)
        if not rows:
            continue  # nobody to grade: no notice
        data = {"year": year, "branch_id": branch_id,
                "grades": [{"member_id": r.member_id, "score": r.score, "grade": r.grade,
                            "recommendation": r.recommendation} for r in rows]}
        raised["year_graded"] += raise_alert(uow, f"graded|{branch_id}|{year}", "year_graded",
                                             data, branch_id, None, branch.org.path, today)
    session.add(ClosedYear(year=year, judged_on=today))


def rules_edited(session, rules: Rules) -> bool:
    """The stored figures were computed with rules of other content under this version."""
    run = session.get(DailyRun, 1)
    return run is not None and run.rules_digest not in (None, rules.digest)


def rules_applied(session, rules: Rules) -> None:
    run = session.get(DailyRun, 1)
    if run is not None:
        run.rules_digest = rules.digest


def daily_due(session, today: date) -> bool:
    run = session.get(DailyRun, 1)
    return run is None or run.day < today


# -- recalculation ------------------------------------------------------------------------------------
def recalculate(uow: UnitOfWork, rules: Rules, year: int, today: date) -> dict:
    """A year rebuilt from scoring's own copy: tallies, months, every member's score and every
    branch's figures. Gives exactly what the incremental path gave."""
    started = time.monotonic()
    session = uow.session
    rebuild_lock(session, exclusive=True)
    rebuild_year(session, year)
    session.execute(delete(MemberScore).where(MemberScore.year == year))
    members = recompute_all_members(session, rules, year)
    branches = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    recompute_branches(session, rules, year, list(branches), year_end(year, today),
                       domain.year_closed(year, today))
    recompute_all_risks(uow, rules, today)
    uow.emit("scores_changed", {"year": year, "member_ids": members,
                                "branch_ids": list(branches)})
    return {"year": year, "members": len(members), "branches": len(branches),
            "rules_version": rules.version, "seconds": round(time.monotonic() - started, 2)}


# -- reads ----------------------------------------------------------------------------------------
def _org(session, principal: Principal, org_id: str) -> OrgCopy:
    org = session.get(OrgCopy, org_id)
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    principal.check_scope(path_ids(org.path), f"organization {org_id!r}")
    return org


def member_score(uow: UnitOfWork, principal: Principal, rules: Rules, member_id: str,
                 year: int, as_of: date | None = None) -> dict:
    session = uow.session
    state = session.get(MemberState, member_id)
    if state is None:
        raise NotFound(f"member {member_id!r} not found")
    branch = session.get(OrgCopy, state.branch_id)
    principal.check_scope(path_ids(branch.path if branch else None), f"member {member_id!r}")
    lines = member_lines(session, member_id, year)
    if as_of is not None:
        lines = [line for line in lines if _day(line.held_on) <= as_of]
    score = domain.member_score(rules, lines, state.status)
    out = {"member_id": member_id, "name": state.name, "branch_id": state.branch_id,
           "status": state.status, "year": year, "score": score.score, "raw": score.raw,
           "clamped": score.clamped, "grade": score.grade,
           "recommendation": score.recommendation, "breakdown": score.breakdown,
           "rules_version": rules.version}
    if as_of is not None:
        out["as_of"] = as_of.isoformat()
    return out


def branch_compliance(uow: UnitOfWork, principal: Principal, rules: Rules, branch_id: str,
                      year: int, as_of: date | None, today: date) -> dict:
    session = uow.session
    branch = _org(session, principal, branch_id)
    if branch.kind != "branch":
        raise ValidationError.field("branch_id", f"{branch_id!r} is a {branch.kind}, not a branch")
    day, closed = counted_day(year, as_of, today)
    stored = session.get(BranchStat, (branch_id, year))
    if stored is not None and stored.as_of == day and stored.closed == closed \
            and stored.rules_version == rules.version \
            and session.get(Dirty, ("branch", branch_id, year)) is None:
        return stored.figures  # current, and no event since has made it stale
    return branch_figures(session, rules, branch_id, year, day, closed)


def _branch_stats(session, rules: Rules, org: OrgCopy, year: int, day: date,
                  closed: bool) -> list[dict]:
    """Every branch under `org` with its figures as of `day`, in path order: what rankings,
    unevenness and the overview read. One query serves them: the branches joined to the
    figures the drain and the daily run keep per branch (branch_stat) and to their dirty
    marks. A stored row is used when it is as of `day`, of this rules version and not marked
    stale; only the others (a day in the past, a change not drained yet) are computed here, in
    bulk. Recomputing every branch per call cost seconds for a county."""
    stat, mark = BranchStat.__table__, Dirty.__table__
    rows = _rows(session,
        select(OrgCopy.org_id, OrgCopy.name, OrgCopy.category, OrgCopy.path, stat.c.as_of,
               stat.c.closed, stat.c.rules_version, stat.c.compliance,
               stat.c.attendance_rate, stat.c.score, stat.c.light,
               mark.c.ident.label("stale"))
        .select_from(OrgCopy)
        .outerjoin(stat, (stat.c.branch_id == OrgCopy.org_id) & (stat.c.year == year))
        .outerjoin(mark, (mark.c.kind == "branch") & (mark.c.ident == OrgCopy.org_id)
                   & (mark.c.year == year))
        .where(OrgCopy.kind == "branch", under(OrgCopy.path, org.org_id))
        .order_by(OrgCopy.path))
    # plain tuples (`_rows`): as_of as the driver gives it, compared as text or as a date
    version, days = rules.version, (day, day.isoformat())
    missing = [row[0] for row in rows if not (
        row[4] in days and bool(row[5]) == closed and row[6] == version and row[11] is None)]
    computed = {branch_id: figures_of(rules, inputs, year, day, closed) for branch_id, inputs
                in branch_inputs(session, missing, year, day).items()} if missing else {}
    out = []
    for org_id, name, category, path, _, _, _, compliance, rate, score, light, _ in rows:
        figures = computed.get(org_id)
        if figures is not None:
            compliance, rate, score, light = (figures["compliance"],
                                              figures["attendance_rate"], figures["score"],
                                              figures["light"])
        out.append({"branch_id": org_id, "name": name, "category": category, "path": path,
                    "compliance": compliance, "attendance_rate": rate, "score": score,
                    "light": light})
    return out


def ranking(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str, year: int,
            level: str, limit: int, today: date) -> dict:
    session = uow.session
    org = _org(session, principal, org_id)
    day, closed = counted_day(year, None, today)
    if level == "branch":
        stats = _branch_stats(session, rules, org, year, day, closed)
        named = {s["branch_id"]: s for s in stats}
        ranked = domain.ranked([(s["branch_id"], s["score"]) for s in stats])
        items = [{"rank": rank, "branch_id": ident, "name": named[ident]["name"],
                  "category": named[ident]["category"], "score": score,
                  "compliance": named[ident]["compliance"], "light": named[ident]["light"]}
                 for rank, ident, score in ranked[:limit]]
        return {"org_id": org_id, "year": year, "level": level, "items": items,
                "total": len(ranked), "rules_version": rules.version}
    # every active member of the year under `org`, the base for those without lines
    rows = year_scores(session, rules, year, under(OrgCopy.path, org.org_id))
    info = {r.member_id: r for r in rows}
    ranked = domain.ranked([(r.member_id, r.score) for r in rows])
    items = [{"rank": rank, "member_id": ident, "name": info[ident].name,
              "branch_id": info[ident].branch_id, "score": score,
              "grade": info[ident].grade, "recommendation": info[ident].recommendation}
             for rank, ident, score in ranked[:limit]]
    return {"org_id": org_id, "year": year, "level": level, "items": items,
            "total": len(ranked), "rules_version": rules.version}


def unevenness(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str, year: int,
               as_of: date | None, today: date) -> dict:
    session = uow.session
    org = _org(session, principal, org_id)
    day, closed = counted_day(year, as_of, today)
    stats = _branch_stats(session, rules, org, year, day, closed)
    return {"org_id": org_id, "year": year, "as_of": day.isoformat(),
            "categories": domain.unevenness(rules, [(s["category"], s["compliance"])
                                                    for s in stats]),
            "threshold": rules.unevenness_threshold, "rules_version": rules.version}


def members_at_risk(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str,
                    as_of: date | None, today: date, limit: int = 1000,
                    offset: int = 0, all_streaks: bool = False) -> dict:
    session = uow.session
    org = _org(session, principal, org_id)
    day = as_of or today
    items = []
    run = session.get(DailyRun, 1)
    if day == today and run is not None and run.day == today:
        # kept current: today's daily run computed every streak, events since updated them
        query = select(MemberRisk).where(under(MemberRisk.branch_path, org.org_id),
                                         MemberRisk.as_of == day)
        if not all_streaks:
            query = query.where(MemberRisk.level.is_not(None))
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(query.order_by(MemberRisk.months.desc(), MemberRisk.member_id)
                               .limit(limit).offset(offset)).all()
        names = dict(session.execute(select(MemberState.member_id, MemberState.name).where(
            MemberState.member_id.in_([r.member_id for r in rows]))).all()) if rows else {}
        page = [{"member_id": r.member_id, "name": names.get(r.member_id, ""),
                 "branch_id": r.branch_id, "months": r.months, "level": r.level,
                 "missed": r.missed} for r in rows]
    else:
        records = [r for r in live_risks(session, rules, org.org_id, day)
                   if all_streaks or r["level"] is not None]
        records.sort(key=lambda r: (-r["months"], r["member_id"]))
        total, page = len(records), records[offset:offset + limit]
    for record in page:
        items.append({**{k: record[k] for k in ("member_id", "name", "branch_id", "months",
                                                 "level")},
                      "months_list": missed_meetings(session, record["member_id"],
                                                     record["missed"])})
    return {"org_id": org_id, "as_of": day.isoformat(), "items": items,
            "total": total, "rules_version": rules.version}


def list_alerts(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    session = uow.session
    # year_graded is a notice for the notifications service, not an alert to list
    query = principal.limit(select(Alert).where(Alert.kind.in_(KINDS)), Alert.branch_path)
    if "org_id" in filters:
        org = _org(session, principal, filters["org_id"])
        query = query.where(under(Alert.branch_path, org.org_id))
    if "kind" in filters:
        query = query.where(Alert.kind == filters["kind"])
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Alert.raised_at.desc(), Alert.key)
                           .limit(filters["limit"]).offset(filters["offset"])).all()
    return {"items": [{"kind": a.kind, "branch_id": a.branch_id, "member_id": a.member_id,
                       "raised_on": a.raised_on.isoformat(), "raised_at": iso(a.raised_at),
                       "data": a.data} for a in rows], "total": total}


# -- the dashboard's reads: a county's branches at once, a branch's slots one by one -------------
def branch_overview(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str,
                    year: int, as_of: date | None, today: date) -> dict:
    """Every branch under `org_id` with its light, compliance, attendance rate, score, rank,
    category and township, the lights counted, unevenness by category and the members at
    risk counted by level: what a county or township overview shows, in a few queries
    (stored figures when they are as of the day asked, the others computed in bulk), so
    that a dashboard never asks once per branch."""
    session = uow.session
    org = _org(session, principal, org_id)
    day, closed = counted_day(year, as_of, today)
    stats = _branch_stats(session, rules, org, year, day, closed)
    townships = session.execute(
        select(OrgCopy.org_id, OrgCopy.name).where(OrgCopy.kind == "township",
                                                   under(OrgCopy.path, org.org_id))
        .order_by(OrgCopy.path)).all()
    township_ids = {t.org_id for t in townships}
    items = []
    for stat in stats:
        township = next((ident for ident in path_ids(stat["path"]) if ident in township_ids),
                        None)
        items.append({"branch_id": stat["branch_id"], "name": stat["name"],
                      "category": stat["category"], "township_id": township,
                      "compliance": stat["compliance"],
                      "attendance_rate": stat["attendance_rate"],
                      "score": stat["score"], "light": stat["light"]})
    ranks = {ident: rank for rank, ident, _ in domain.ranked(
        [(item["branch_id"], item["score"]) for item in items])}
    lights = dict.fromkeys(("red", "yellow", "green"), 0)
    for item in items:
        item["rank"] = ranks[item["branch_id"]]
        lights[item["light"]] = lights.get(item["light"], 0) + 1
    return {"org_id": org.org_id, "name": org.name, "kind": org.kind, "year": year,
            "as_of": day.isoformat(), "closed": closed,
            "townships": [{"org_id": t.org_id, "name": t.name} for t in townships],
            "branches": items, "lights": lights,
            "categories": domain.unevenness(rules, [(i["category"], i["compliance"])
                                                    for i in items]),
            "threshold": rules.unevenness_threshold,
            "at_risk": _risk_levels(session, rules, org, day, today),
            "rules_version": rules.version}


def _risk_levels(session, rules: Rules, org: OrgCopy, day: date, today: date) -> dict:
    """Members under `org` with a streak on `day`, counted by level (`none`: a streak too
    short for a level yet): from the stored streaks when today's daily run made them
    current, else computed as members_at_risk computes them."""
    counts = dict.fromkeys(("notice", "alert", "review", "none"), 0)
    run = session.get(DailyRun, 1)
    if day == today and run is not None and run.day == today:
        for level, count in session.execute(
                select(MemberRisk.level, func.count())
                .where(under(MemberRisk.branch_path, org.org_id), MemberRisk.as_of == day)
                .group_by(MemberRisk.level)):
            counts[level or "none"] = counts.get(level or "none", 0) + count
    else:
        for record in live_risks(session, rules, org.org_id, day):
            level = record["level"] or "none"
            counts[level] = counts.get(level, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


def branch_slots(uow: UnitOfWork, principal: Principal, rules: Rules, branch_id: str,
                 year: int, as_of: date | None, today: date) -> dict:
    """Each slot a branch owes in a year up to a day (type, period, group), met or not, as
    compliance counts them: the branch page's grid of slots met and missed."""
    session = uow.session
    branch = _org(session, principal, branch_id)
    if branch.kind != "branch":
        raise ValidationError.field("branch_id", f"{branch_id!r} is a {branch.kind}, not a branch")
    day, closed = counted_day(year, as_of, today)
    inputs = branch_inputs(session, [branch_id], year, day)[branch_id]
    soon = day + timedelta(days=rules.due_soon_days)
    slots = [{"type": s.type, "period": s.period.label, "group_id": s.group_id,
              "start": s.period.start.isoformat(), "end": s.period.end.isoformat(),
              "met": s.met, "required": s.required, "ended": s.ended, "held": s.held,
              "due_soon": not s.ended and not s.met and s.period.end <= soon}
             for s in domain.slots(rules, inputs.facts, inputs.meetings, year, day, closed)]
    return {"branch_id": branch_id, "year": year, "as_of": day.isoformat(), "closed": closed,
            "requirements": [{"type": r.type, "at_least": r.at_least, "per": r.per,
                              "per_group": r.per_group} for r in rules.requirements],
            "groups": sorted(inputs.facts.groups), "slots": slots,
            "rules_version": rules.version}
