"""scoring's use cases: keeping the figures up to date as events arrive, the daily run that
raises time-driven alerts, recalculation, and the reads (each checks the caller's scope).

The rules are in domain.py; this module loads what they need from the copy (replica.py) and
stores what they return: member scores from the tallies, branch figures from the branch's
meetings, at-risk streaks from the members' months.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from orglife.common.auth import Principal
from orglife.common.clock import iso
from orglife.common.db import UnitOfWork, under
from orglife.common.errors import NotFound, ValidationError
from orglife.common.rules import Rules
from orglife.common.vocabulary import ACTIVE_STATUSES

from . import domain
from .models import (
    ActivityCopy, Alert, AttendanceCopy, BranchStat, DailyRun, Dirty, MeetingCopy, MemberMonth,
    MemberRisk, MemberScore, MemberState, MemberTally, OrgCopy,
)
from .replica import Changes, apply_pending
from .tallies import rebuild_year, replacing_upsert


def path_ids(path: str | None) -> list[str]:
    return [part for part in (path or "").split("/") if part]


def year_end(year: int, today: date) -> date:
    """The day a year's figures are counted to: today, or the year's last day once past."""
    return min(today, date(year, 12, 31))


def _upsert(session, table, keys: tuple[str, ...], rows: list[dict]) -> None:
    if rows:
        session.execute(replacing_upsert(table, session.get_bind().dialect.name, keys), rows)


def _stream(session, query, size: int = 5000):
    """The rows of a large query as plain tuples, fetched `size` at a time from the driver's
    own cursor (SQLAlchemy's row objects cost more than the work done with them here)."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect,
                             compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    cursor = connection.connection.driver_connection.cursor()
    try:
        if connection.dialect.paramstyle == "qmark":
            cursor.execute(str(compiled), [params[name] for name in compiled.positiontup])
        else:
            cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(size):
            yield from rows
    finally:
        cursor.close()


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
    rows = [{"kind": "member", "ident": m, "year": y}
            for y, members in changes.members.items() for m in members]
    rows += [{"kind": "branch", "ident": b, "year": y}
             for y, branches in changes.branches.items() for b in branches]
    rows += [{"kind": "risk", "ident": m, "year": 0} for m in changes.risk_members]
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(_marking(dialect), rows)


@lru_cache(maxsize=4)
def _marking(dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(Dirty).on_conflict_do_nothing(index_elements=["kind", "ident", "year"])


def drain(uow: UnitOfWork, rules: Rules, today: date, risks: bool = True,
          limit: int = 20_000) -> dict:
    """Recompute everything marked stale since the last drain, in bulk; one `scores_changed`
    per year. Under a burst, many batches' marks are drained at once (a member touched by
    forty meetings is scored once). Streaks only when `risks` (the service drains those less
    often: they raise alerts, nothing waits on them within the second)."""
    session = uow.session
    query = select(Dirty.kind, Dirty.ident, Dirty.year).limit(limit)
    if not risks:
        query = query.where(Dirty.kind != "risk")
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # instances share the marks
    marks = session.execute(query).all()
    if not marks:
        return {}
    members: dict[int, list] = defaultdict(list)
    branches: dict[int, list] = defaultdict(list)
    risks = []
    for kind, ident, year in marks:
        (members[year] if kind == "member" else branches[year] if kind == "branch"
         else risks).append(ident)
    for year in sorted(set(members) | set(branches)):
        recompute_members(session, rules, year, sorted(members.get(year, ())))
        recompute_branches(session, rules, year, sorted(branches.get(year, ())),
                           year_end(year, today))
        uow.emit("scores_changed", {"year": year, "member_ids": sorted(members.get(year, ())),
                                    "branch_ids": sorted(branches.get(year, ()))})
    recompute_risks(uow, rules, sorted(risks), today)
    for (kind, year), idents in _grouped(marks).items():
        for chunk in _chunks(idents):
            session.execute(delete(Dirty).where(Dirty.kind == kind, Dirty.year == year,
                                                Dirty.ident.in_(chunk)))
    return {"members": sum(map(len, members.values())),
            "branches": sum(map(len, branches.values())), "risks": len(risks)}


def _grouped(marks) -> dict:
    out: dict = defaultdict(list)
    for kind, ident, year in marks:
        out[(kind, year)].append(ident)
    return out


# -- member scores ------------------------------------------------------------------------------
def recompute_members(session, rules: Rules, year: int, member_ids: list[str]) -> None:
    """Scores from the tallies, 2,000 members at a time (memory stays flat for a county)."""
    for chunk in _chunks(member_ids, 2000):
        _recompute_members(session, rules, year, chunk)


def _recompute_members(session, rules: Rules, year: int, member_ids: list[str]) -> None:
    tallies: dict[str, dict] = defaultdict(dict)
    states: dict[str, tuple] = {}
    for chunk in _chunks(member_ids):
        for member_id, bucket, status, count in session.execute(
                select(MemberTally.member_id, MemberTally.bucket, MemberTally.status,
                       MemberTally.count)
                .where(MemberTally.year == year, MemberTally.member_id.in_(chunk))):
            tallies[member_id][(bucket, status)] = count
        for member_id, status, path in session.execute(
                select(MemberState.member_id, MemberState.status, OrgCopy.path)
                .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id)
                .where(MemberState.member_id.in_(chunk))):
            states[member_id] = (status, path)
    rows = []
    for member_id in member_ids:
        status, path = states.get(member_id, ("formal", None))
        score = domain.score_from_tally(rules, tallies.get(member_id, {}), status)
        rows.append({"member_id": member_id, "year": year, "score": score.score,
                     "raw": score.raw, "grade": score.grade,
                     "recommendation": score.recommendation, "branch_path": path,
                     "rules_version": rules.version})
    _upsert(session, MemberScore.__table__, ("member_id", "year"), rows)


def recompute_all_members(session, rules: Rules, year: int) -> list[str]:
    """Every member's score of a year (recalculate): the tallies streamed in member order
    in one query, the scores written 2,000 at a time. Returns the members scored."""
    states = {member_id: (status, path) for member_id, status, path in session.execute(
        select(MemberState.member_id, MemberState.status, OrgCopy.path)
        .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id))}
    scored: list[str] = []
    rows: list[dict] = []

    def score(member_id: str, tally: dict) -> None:
        status, path = states.get(member_id, ("formal", None))
        result = domain.score_from_tally(rules, tally, status)
        rows.append({"member_id": member_id, "year": year, "score": result.score,
                     "raw": result.raw, "grade": result.grade,
                     "recommendation": result.recommendation, "branch_path": path,
                     "rules_version": rules.version})
        scored.append(member_id)
        if len(rows) >= 2000:
            _upsert(session, MemberScore.__table__, ("member_id", "year"), rows)
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
    for member_id in sorted(set(states) - set(scored)):  # no line this year: the base
        score(member_id, {})
    _upsert(session, MemberScore.__table__, ("member_id", "year"), rows)
    return sorted(scored)


def member_lines(session, member_id: str, year: int) -> list[domain.Participation]:
    """A member's year, line by line, from the copy."""
    lines = [domain.Participation("meeting", type_, ref, held_on, status, bool(remote),
                                  branch_id)
             for type_, ref, held_on, status, remote, branch_id in session.execute(
                 select(MeetingCopy.type, MeetingCopy.meeting_id, MeetingCopy.held_on,
                        AttendanceCopy.status, AttendanceCopy.remote, MeetingCopy.branch_id)
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
    committee: bool = False
    meetings: list = field(default_factory=list)
    last_meeting_on: date | None = None

    @property
    def facts(self) -> domain.Branch:
        return domain.Branch(self.org.org_id, tuple(sorted(self.groups)), self.committee,
                             self.org.registered_on)


def branch_inputs(session, branch_ids, year: int, as_of: date) -> dict[str, BranchInputs]:
    """Five queries per 500 branches, whatever their meetings."""
    out: dict[str, BranchInputs] = {}
    for chunk in _chunks(branch_ids):
        for org in session.execute(select(OrgCopy.org_id, OrgCopy.name, OrgCopy.category,
                                          OrgCopy.path, OrgCopy.registered_on)
                                   .where(OrgCopy.org_id.in_(chunk), OrgCopy.kind == "branch")):
            out[org.org_id] = BranchInputs(org)
        chunk = [b for b in chunk if b in out]
        for group_id, parent_id in session.execute(
                select(OrgCopy.org_id, OrgCopy.parent_id)
                .where(OrgCopy.kind == "group", OrgCopy.parent_id.in_(chunk))):
            out[parent_id].groups.append(group_id)
        for branch_id in session.scalars(
                select(MemberState.branch_id).distinct()
                .where(MemberState.branch_id.in_(chunk), MemberState.committee_member.is_(True),
                       MemberState.status.in_(ACTIVE_STATUSES))):
            out[branch_id].committee = True
        for (branch_id, meeting_id, type_, held_on, group_id, logged, cancelled, quorum_met,
             expected, present) in session.execute(
                select(MeetingCopy.branch_id, MeetingCopy.meeting_id, MeetingCopy.type,
                       MeetingCopy.held_on, MeetingCopy.group_id, MeetingCopy.logged,
                       MeetingCopy.cancelled, MeetingCopy.quorum_met, MeetingCopy.expected,
                       MeetingCopy.present)
                .where(MeetingCopy.branch_id.in_(chunk), MeetingCopy.year == year)):
            out[branch_id].meetings.append(domain.MeetingFacts(
                meeting_id, type_, held_on, group_id,
                valid=bool(logged and not cancelled and quorum_met),
                cancelled=bool(cancelled or not logged), expected=expected, present=present))
        for branch_id, last in session.execute(
                select(MeetingCopy.branch_id, func.max(MeetingCopy.held_on))
                .where(MeetingCopy.branch_id.in_(chunk), MeetingCopy.logged.is_(True),
                       MeetingCopy.cancelled.is_(False), MeetingCopy.held_on <= as_of)
                .group_by(MeetingCopy.branch_id)):
            out[branch_id].last_meeting_on = last
    return out


def figures_of(rules: Rules, inputs: BranchInputs, year: int, as_of: date) -> dict:
    """The compliance record of SPEC §4 for one branch and year, as of a day."""
    result = domain.compliance(rules, inputs.facts, inputs.meetings, year, as_of)
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
            "rules_version": rules.version}


def branch_figures(session, rules: Rules, branch_id: str, year: int, as_of: date) -> dict:
    return figures_of(rules, branch_inputs(session, [branch_id], year, as_of)[branch_id],
                      year, as_of)


def recompute_branches(session, rules: Rules, year: int, branch_ids: list[str],
                       as_of: date) -> dict[str, BranchInputs]:
    inputs = branch_inputs(session, branch_ids, year, as_of)
    rows = []
    for branch_id, branch in inputs.items():
        figures = figures_of(rules, branch, year, as_of)
        rows.append({"branch_id": branch_id, "year": year, "as_of": as_of,
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


def _risk_inputs(session, member_ids):
    states = {row.member_id: row for row in session.execute(
        select(MemberState.member_id, MemberState.name, MemberState.branch_id,
               MemberState.status, MemberState.joined_on)
        .where(MemberState.member_id.in_(member_ids)))}
    months: dict[str, dict] = defaultdict(dict)
    for member_id, month, expected, attended, leave in session.execute(
            select(MemberMonth.member_id, MemberMonth.month, MemberMonth.expected,
                   MemberMonth.attended, MemberMonth.leave)
            .where(MemberMonth.member_id.in_(member_ids))):
        months[member_id][month] = (expected, attended, leave)
    return states, months


def recompute_risks(uow: UnitOfWork, rules: Rules, member_ids: list[str], as_of: date) -> None:
    session = uow.session
    for chunk in _chunks(member_ids):
        states, months = _risk_inputs(session, chunk)
        paths = dict(session.execute(select(OrgCopy.org_id, OrgCopy.path).where(
            OrgCopy.org_id.in_({s.branch_id for s in states.values()}))).all())
        raised = set(session.scalars(select(Alert.key).where(
            Alert.kind == "member_at_risk", Alert.member_id.in_(chunk))))
        rows, clear = [], []
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
            session.execute(delete(MemberRisk).where(MemberRisk.member_id.in_(clear)))
        _upsert(session, MemberRisk.__table__, ("member_id",), rows)


def recompute_all_risks(uow: UnitOfWork, rules: Rules, as_of: date) -> None:
    """Every member's streak (the daily run, recalculate): months streamed in member order
    in one query; only members with a streak are kept."""
    session = uow.session
    states = {row.member_id: row for row in session.execute(
        select(MemberState.member_id, MemberState.name, MemberState.branch_id,
               MemberState.status, MemberState.joined_on, OrgCopy.path)
        .outerjoin(OrgCopy, OrgCopy.org_id == MemberState.branch_id)
        .where(MemberState.status.in_(ACTIVE_STATUSES)))}
    raised = set(session.scalars(select(Alert.key).where(Alert.kind == "member_at_risk")))
    session.execute(delete(MemberRisk))
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
    data = {"member_id": record["member_id"], "branch_id": record["branch_id"],
            "months": record["months"], "level": level,
            "months_list": missed_meetings(uow.session, record["member_id"], record["missed"])}
    return raise_alert(uow, risk_key(record, level), "member_at_risk", data,
                       record["branch_id"], record["member_id"], path, on)


def daily(uow: UnitOfWork, rules: Rules, today: date) -> dict:
    """Once a day: every branch's figures as of today, overdue and silent branches, every
    member's streak (a month ending changes them). Alerts already raised stay quiet."""
    session = uow.session
    years = sorted({today.year, (today - timedelta(days=1)).year})
    branch_ids = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    raised = {"branch_overdue": 0, "branch_silent": 0, "member_at_risk": 0}
    before = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == "member_at_risk"))
    for year in years:
        day = year_end(year, today)
        for branch_id, branch in recompute_branches(session, rules, year, list(branch_ids),
                                                    day).items():
            for slot in domain.overdue(rules, branch.facts, branch.meetings, year, day):
                data = {"branch_id": branch_id, "type": slot["type"], "period": slot["period"]}
                if slot["group_id"]:
                    data["group_id"] = slot["group_id"]
                key = f"overdue|{branch_id}|{slot['type']}|{slot['period']}|" \
                      f"{slot['group_id'] or ''}"
                raised["branch_overdue"] += raise_alert(uow, key, "branch_overdue", data,
                                                        branch_id, None, branch.org.path, today)
            if year != today.year:
                continue
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
        session.add(DailyRun(id=1, day=today))
    else:
        run.day = today
    return {"day": today.isoformat(), "branches": len(branch_ids), "members": members,
            "raised": raised}


def daily_due(session, today: date) -> bool:
    run = session.get(DailyRun, 1)
    return run is None or run.day < today


# -- recalculation ------------------------------------------------------------------------------------
def recalculate(uow: UnitOfWork, rules: Rules, year: int, today: date) -> dict:
    """A year rebuilt from scoring's own copy: tallies, months, every member's score and every
    branch's figures. Gives exactly what the incremental path gave."""
    started = time.monotonic()
    session = uow.session
    rebuild_year(session, year)
    session.execute(delete(MemberScore).where(MemberScore.year == year))
    members = recompute_all_members(session, rules, year)
    branches = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    recompute_branches(session, rules, year, list(branches), year_end(year, today))
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
                 year: int) -> dict:
    session = uow.session
    state = session.get(MemberState, member_id)
    if state is None:
        raise NotFound(f"member {member_id!r} not found")
    branch = session.get(OrgCopy, state.branch_id)
    principal.check_scope(path_ids(branch.path if branch else None), f"member {member_id!r}")
    score = domain.member_score(rules, member_lines(session, member_id, year), state.status)
    return {"member_id": member_id, "name": state.name, "branch_id": state.branch_id,
            "status": state.status, "year": year, "score": score.score, "raw": score.raw,
            "clamped": score.clamped, "grade": score.grade,
            "recommendation": score.recommendation, "breakdown": score.breakdown,
            "rules_version": rules.version}


def branch_compliance(uow: UnitOfWork, principal: Principal, rules: Rules, branch_id: str,
                      year: int, as_of: date | None, today: date) -> dict:
    session = uow.session
    branch = _org(session, principal, branch_id)
    if branch.kind != "branch":
        raise ValidationError.field("branch_id", f"{branch_id!r} is a {branch.kind}, not a branch")
    day = year_end(year, as_of or today)
    if day.year < year:
        raise ValidationError.field("as_of", f"{day.isoformat()} is before {year}")
    stored = session.get(BranchStat, (branch_id, year))
    if stored is not None and stored.as_of == day and stored.rules_version == rules.version \
            and session.get(Dirty, ("branch", branch_id, year)) is None:
        return stored.figures  # current, and no event since has made it stale
    return branch_figures(session, rules, branch_id, year, day)


def _branch_stats(session, rules: Rules, org: OrgCopy, year: int, day: date) -> list[dict]:
    """Every branch under `org`: stored figures when they are as of `day`, else computed."""
    stored = session.execute(
        select(BranchStat.branch_id, BranchStat.as_of, BranchStat.rules_version,
               BranchStat.compliance, BranchStat.score, BranchStat.light)
        .where(BranchStat.year == year, under(BranchStat.branch_path, org.org_id))).all()
    stale = set(session.scalars(select(Dirty.ident).where(Dirty.kind == "branch",
                                                          Dirty.year == year)))
    current = {row.branch_id: row for row in stored if row.as_of == day
               and row.rules_version == rules.version and row.branch_id not in stale}
    branches = session.execute(select(OrgCopy.org_id, OrgCopy.name, OrgCopy.category).where(
        OrgCopy.kind == "branch", under(OrgCopy.path, org.org_id))).all()
    missing = [b.org_id for b in branches if b.org_id not in current]
    computed = {branch_id: figures_of(rules, inputs, year, day) for branch_id, inputs in
                branch_inputs(session, missing, year, day).items()} if missing else {}
    out = []
    for branch in branches:
        row = current.get(branch.org_id) or computed.get(branch.org_id)
        if row is None:
            continue
        get = row.get if isinstance(row, dict) else row._mapping.get
        out.append({"branch_id": branch.org_id, "name": branch.name,
                    "category": branch.category, "compliance": get("compliance"),
                    "score": get("score"), "light": get("light")})
    return out


def ranking(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str, year: int,
            level: str, limit: int, today: date) -> dict:
    session = uow.session
    org = _org(session, principal, org_id)
    if level == "branch":
        stats = _branch_stats(session, rules, org, year, year_end(year, today))
        named = {s["branch_id"]: s for s in stats}
        ranked = domain.ranked([(s["branch_id"], s["score"]) for s in stats])
        items = [{"rank": rank, "branch_id": ident, "name": named[ident]["name"],
                  "category": named[ident]["category"], "score": score,
                  "compliance": named[ident]["compliance"], "light": named[ident]["light"]}
                 for rank, ident, score in ranked[:limit]]
        return {"org_id": org_id, "year": year, "level": level, "items": items,
                "total": len(ranked), "rules_version": rules.version}
    rows = session.execute(
        select(MemberScore.member_id, MemberScore.score, MemberScore.grade,
               MemberScore.recommendation, MemberState.name, MemberState.branch_id)
        .join(MemberState, MemberState.member_id == MemberScore.member_id)
        .where(MemberScore.year == year, under(MemberScore.branch_path, org.org_id),
               MemberState.status.in_(ACTIVE_STATUSES))
        .order_by(MemberScore.score.desc(), MemberScore.member_id)).all()
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
    day = year_end(year, as_of or today)
    stats = _branch_stats(session, rules, org, year, day)
    return {"org_id": org_id, "year": year, "as_of": day.isoformat(),
            "categories": domain.unevenness(rules, [(s["category"], s["compliance"])
                                                    for s in stats]),
            "threshold": rules.unevenness_threshold, "rules_version": rules.version}


def members_at_risk(uow: UnitOfWork, principal: Principal, rules: Rules, org_id: str,
                    as_of: date | None, today: date, limit: int = 1000) -> dict:
    session = uow.session
    org = _org(session, principal, org_id)
    day = as_of or today
    items = []
    run = session.get(DailyRun, 1)
    if day == today and run is not None and run.day == today:
        # kept current: today's daily run computed every streak, events since updated them
        rows = session.scalars(select(MemberRisk).where(
            under(MemberRisk.branch_path, org.org_id), MemberRisk.as_of == day)
            .order_by(MemberRisk.months.desc(), MemberRisk.member_id)).all()
        names = dict(session.execute(select(MemberState.member_id, MemberState.name).where(
            MemberState.member_id.in_([r.member_id for r in rows]))).all()) if rows else {}
        records = [{"member_id": r.member_id, "name": names.get(r.member_id, ""),
                    "branch_id": r.branch_id, "months": r.months, "level": r.level,
                    "missed": r.missed} for r in rows]
    else:
        records = []
        member_ids = session.scalars(select(MemberState.member_id).join(
            OrgCopy, OrgCopy.org_id == MemberState.branch_id).where(
                under(OrgCopy.path, org.org_id))).all()
        for chunk in _chunks(member_ids):
            states, months = _risk_inputs(session, chunk)
            for state in states.values():
                record = risk_of(rules, state.member_id, state.name, state.branch_id,
                                 state.status, state.joined_on, months[state.member_id], day)
                if record:
                    records.append(record)
        records.sort(key=lambda r: (-r["months"], r["member_id"]))
    for record in records[:limit]:
        items.append({**{k: record[k] for k in ("member_id", "name", "branch_id", "months",
                                                 "level")},
                      "months_list": missed_meetings(session, record["member_id"],
                                                     record["missed"])})
    return {"org_id": org_id, "as_of": day.isoformat(), "items": items,
            "total": len(records), "rules_version": rules.version}


def list_alerts(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    session = uow.session
    query = principal.limit(select(Alert), Alert.branch_path)
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
