"""scoring's use cases: keeping the figures up to date as events arrive, the daily run that
raises time-driven alerts, recalculation, and the reads (each checks the caller's scope).

The rules are in domain.py; this module loads what they need from the copy (replica.py) and
stores what they return: member scores from the tallies, branch figures from the branch's
meetings, at-risk streaks from the members' months.
"""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, timedelta

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
    ActivityCopy, Alert, AttendanceCopy, BranchStat, DailyRun, MeetingCopy, MemberMonth,
    MemberRisk, MemberScore, MemberState, MemberTally, OrgCopy,
)
from .replica import Changes
from .tallies import rebuild_year


def path_ids(path: str | None) -> list[str]:
    return [part for part in (path or "").split("/") if part]


def year_end(year: int, today: date) -> date:
    """The day a year's figures are counted to: today, or the year's last day once past."""
    return min(today, date(year, 12, 31))


def _upsert(session, table, keys: tuple[str, ...], rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), 500):
        stmt = dialect.insert(table).values(rows[start:start + 500])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})
        session.execute(stmt)


def _chunks(items, size: int = 500):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- applying a batch of events ------------------------------------------------------------------
def apply_changes(uow: UnitOfWork, rules: Rules, changes: Changes, today: date) -> None:
    """After a batch: tallies written, touched members and branches recomputed, at-risk
    alerts raised, one `scores_changed` per year touched."""
    session = uow.session
    changes.flush(session)
    for year in sorted(set(changes.members) | set(changes.branches)):
        members = sorted(changes.members.get(year, ()))
        branches = sorted(changes.branches.get(year, ()))
        recompute_members(session, rules, year, members)
        recompute_branches(session, rules, year, branches, year_end(year, today))
        if members or branches:
            uow.emit("scores_changed", {"year": year, "member_ids": members,
                                        "branch_ids": branches})
    recompute_risks(uow, rules, sorted(changes.risk_members), today)


# -- member scores ------------------------------------------------------------------------------
def recompute_members(session, rules: Rules, year: int, member_ids: list[str]) -> None:
    if not member_ids:
        return
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


def member_lines(session, member_id: str, year: int) -> list[domain.Participation]:
    """A member's year, line by line, from the copy."""
    lines = [domain.Participation("meeting", m.type, m.meeting_id, m.held_on, a.status,
                                  bool(a.remote), m.branch_id)
             for a, m in session.execute(
                 select(AttendanceCopy, MeetingCopy)
                 .join(MeetingCopy, MeetingCopy.meeting_id == AttendanceCopy.meeting_id)
                 .where(AttendanceCopy.member_id == member_id, MeetingCopy.year == year,
                        MeetingCopy.logged.is_(True), MeetingCopy.cancelled.is_(False)))]
    lines += [domain.Participation("activity", a.kind, a.activity_id, a.held_on, "done",
                                   False, a.branch_id)
              for a in session.scalars(select(ActivityCopy).where(
                  ActivityCopy.member_id == member_id, ActivityCopy.year == year))]
    return lines


# -- branch figures -----------------------------------------------------------------------------
def branch_facts(session, branch: OrgCopy) -> domain.Branch:
    groups = session.scalars(select(OrgCopy.org_id).where(
        OrgCopy.parent_id == branch.org_id, OrgCopy.kind == "group")
        .order_by(OrgCopy.org_id)).all()
    committee = session.scalar(select(func.count()).select_from(MemberState).where(
        MemberState.branch_id == branch.org_id, MemberState.committee_member.is_(True),
        MemberState.status.in_(ACTIVE_STATUSES)))
    return domain.Branch(branch.org_id, tuple(groups), bool(committee), branch.registered_on)


def branch_meetings(session, branch_id: str, year: int) -> list[domain.MeetingFacts]:
    return [domain.MeetingFacts(m.meeting_id, m.type, m.held_on, m.group_id,
                                valid=m.logged and not m.cancelled and bool(m.quorum_met),
                                cancelled=m.cancelled or not m.logged, expected=m.expected,
                                present=m.present)
            for m in session.scalars(select(MeetingCopy).where(
                MeetingCopy.branch_id == branch_id, MeetingCopy.year == year))]


def last_meeting_on(session, branch_id: str, as_of: date) -> date | None:
    return session.scalar(select(func.max(MeetingCopy.held_on)).where(
        MeetingCopy.branch_id == branch_id, MeetingCopy.logged.is_(True),
        MeetingCopy.cancelled.is_(False), MeetingCopy.held_on <= as_of))


def branch_figures(session, rules: Rules, branch: OrgCopy, year: int, as_of: date) -> dict:
    """The compliance record of SPEC §4 for one branch and year, as of a day."""
    facts = branch_facts(session, branch)
    result = domain.compliance(rules, facts, branch_meetings(session, branch.org_id, year),
                               year, as_of)
    last = last_meeting_on(session, branch.org_id, as_of)
    silent = domain.silence(rules, last, branch.registered_on, as_of)
    return {"branch_id": branch.org_id, "name": branch.name, "category": branch.category,
            "year": year, "as_of": as_of.isoformat(), "required": result.required,
            "met": result.met, "held": result.held, "compliance": result.compliance,
            "attendance_rate": result.attendance_rate, "score": result.score,
            "light": domain.light(rules, result.compliance, silent is not None,
                                  bool(result.due_soon)),
            "silent_days": silent, "last_meeting_on": last.isoformat() if last else None,
            "by_type": result.by_type, "missed": result.missed, "due_soon": result.due_soon,
            "rules_version": rules.version}


def recompute_branches(session, rules: Rules, year: int, branch_ids: list[str],
                       as_of: date) -> None:
    rows = []
    for chunk in _chunks(branch_ids):
        for branch in session.scalars(select(OrgCopy).where(OrgCopy.org_id.in_(chunk),
                                                            OrgCopy.kind == "branch")):
            figures = branch_figures(session, rules, branch, year, as_of)
            rows.append({"branch_id": branch.org_id, "year": year, "as_of": as_of,
                         "category": branch.category, "branch_path": branch.path,
                         "compliance": figures["compliance"],
                         "attendance_rate": figures["attendance_rate"],
                         "score": figures["score"], "light": figures["light"],
                         "figures": figures, "rules_version": rules.version})
    _upsert(session, BranchStat.__table__, ("branch_id", "year"), rows)


# -- members at risk ------------------------------------------------------------------------------
def risk_of(session, rules: Rules, state: MemberState, months: dict[str, MemberMonth],
            as_of: date) -> dict | None:
    """The at-risk record of a member as of a day, or None without a streak."""
    if state.status not in ACTIVE_STATUSES:
        return None
    since = state.joined_on
    complete = domain.complete_months_before(as_of, since)
    missed = domain.streak([domain.Month(m, months[m].expected, months[m].attended,
                                         months[m].leave) if m in months
                            else domain.Month(m) for m in complete])
    if not missed:
        return None
    return {"member_id": state.member_id, "name": state.name, "branch_id": state.branch_id,
            "months": len(missed), "level": domain.risk_level(rules, len(missed)),
            "missed": missed}


def recompute_risks(uow: UnitOfWork, rules: Rules, member_ids: list[str], as_of: date) -> None:
    session = uow.session
    for chunk in _chunks(member_ids):
        states = {s.member_id: s for s in session.scalars(
            select(MemberState).where(MemberState.member_id.in_(chunk)))}
        months: dict[str, dict] = defaultdict(dict)
        for row in session.scalars(select(MemberMonth).where(MemberMonth.member_id.in_(chunk))):
            months[row.member_id][row.month] = row
        paths = dict(session.execute(select(OrgCopy.org_id, OrgCopy.path).where(
            OrgCopy.org_id.in_({s.branch_id for s in states.values()}))).all())
        rows, clear = [], []
        for member_id in chunk:
            state = states.get(member_id)
            record = risk_of(session, rules, state, months[member_id], as_of) if state else None
            if record is None:
                clear.append(member_id)
                continue
            rows.append({"member_id": member_id, "branch_id": state.branch_id,
                         "branch_path": paths.get(state.branch_id) or "",
                         "months": record["months"], "level": record["level"],
                         "missed": record["missed"], "as_of": as_of})
            for level in domain.levels_reached(rules, record["months"]):
                raise_member_at_risk(uow, record, level, paths.get(state.branch_id), as_of)
        if clear:
            session.execute(delete(MemberRisk).where(MemberRisk.member_id.in_(clear)))
        _upsert(session, MemberRisk.__table__, ("member_id",), rows)


def missed_meetings(session, member_id: str, months: list[str]) -> list[dict]:
    """Per missed month, the meetings the member was expected at and missed."""
    wanted = set(months)
    found: dict[str, list] = {month: [] for month in months}
    for meeting in session.scalars(
            select(MeetingCopy).join(AttendanceCopy,
                                     AttendanceCopy.meeting_id == MeetingCopy.meeting_id)
            .where(AttendanceCopy.member_id == member_id, AttendanceCopy.expected.is_(True),
                   AttendanceCopy.status == "absent", MeetingCopy.logged.is_(True),
                   MeetingCopy.cancelled.is_(False))
            .order_by(MeetingCopy.held_on)):
        month = meeting.held_on.strftime("%Y-%m")
        if month in wanted:
            found[month].append({"meeting_id": meeting.meeting_id, "type": meeting.type,
                                 "date": meeting.held_on.isoformat(),
                                 "branch_id": meeting.branch_id})
    return [{"month": month, "meetings": found[month]} for month in months]


# -- alerts ----------------------------------------------------------------------------------------
def raise_alert(uow: UnitOfWork, key: str, kind: str, data: dict, branch_id: str | None,
                member_id: str | None, path: str | None, on: date) -> bool:
    """Store the alert and announce it, once per occurrence (`key`)."""
    session = uow.session
    if session.get(Alert, key) is not None:
        return False
    session.add(Alert(key=key, kind=kind, branch_id=branch_id, member_id=member_id,
                      branch_path=path, data=data, raised_on=on,
                      raised_at=uow.clock.now()))
    session.flush()
    uow.emit(kind, data)
    return True


def raise_member_at_risk(uow: UnitOfWork, record: dict, level: str, path: str | None,
                         on: date) -> bool:
    # One streak is one occurrence: it keeps its oldest missed month as it grows.
    key = f"risk|{record['member_id']}|{level}|{record['missed'][-1]}"
    if uow.session.get(Alert, key) is not None:
        return False
    data = {"member_id": record["member_id"], "branch_id": record["branch_id"],
            "months": record["months"], "level": level,
            "months_list": missed_meetings(uow.session, record["member_id"], record["missed"])}
    return raise_alert(uow, key, "member_at_risk", data, record["branch_id"],
                       record["member_id"], path, on)


def daily(uow: UnitOfWork, rules: Rules, today: date) -> dict:
    """Once a day: every branch's figures as of today, overdue and silent branches, every
    member's streak (a month ending changes them). Alerts already raised stay quiet."""
    session = uow.session
    years = sorted({today.year, (today - timedelta(days=1)).year})
    branches = session.scalars(select(OrgCopy).where(OrgCopy.kind == "branch")).all()
    raised = {"branch_overdue": 0, "branch_silent": 0, "member_at_risk": 0}
    before = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == "member_at_risk"))
    for year in years:
        recompute_branches(session, rules, year, [b.org_id for b in branches],
                           year_end(year, today))
        for branch in branches:
            facts = branch_facts(session, branch)
            meetings = branch_meetings(session, branch.org_id, year)
            for slot in domain.overdue(rules, facts, meetings, year, year_end(year, today)):
                data = {"branch_id": branch.org_id, "type": slot["type"],
                        "period": slot["period"]}
                if slot["group_id"]:
                    data["group_id"] = slot["group_id"]
                key = f"overdue|{branch.org_id}|{slot['type']}|{slot['period']}|" \
                      f"{slot['group_id'] or ''}"
                raised["branch_overdue"] += raise_alert(uow, key, "branch_overdue", data,
                                                        branch.org_id, None, branch.path, today)
    for branch in branches:
        last = last_meeting_on(session, branch.org_id, today)
        days = domain.silence(rules, last, branch.registered_on, today)
        if days is None:
            continue
        since = last or branch.registered_on
        step = days // rules.silent_branch_days  # again every further stretch of silence
        data = {"branch_id": branch.org_id, "days": days,
                "last_meeting_at": last.isoformat() if last else None}
        raised["branch_silent"] += raise_alert(
            uow, f"silent|{branch.org_id}|{since.isoformat()}|{step}", "branch_silent", data,
            branch.org_id, None, branch.path, today)
    members = session.scalars(select(MemberState.member_id).where(
        MemberState.status.in_(ACTIVE_STATUSES))).all()
    recompute_risks(uow, rules, list(members), today)
    raised["member_at_risk"] = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == "member_at_risk")) - before
    run = session.get(DailyRun, 1)
    if run is None:
        session.add(DailyRun(id=1, day=today))
    else:
        run.day = today
    return {"day": today.isoformat(), "branches": len(branches), "members": len(members),
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
    members = sorted(set(session.scalars(select(MemberTally.member_id).where(
        MemberTally.year == year)).all()) | set(session.scalars(
            select(MemberState.member_id)).all()))
    recompute_members(session, rules, year, members)
    branches = session.scalars(select(OrgCopy.org_id).where(OrgCopy.kind == "branch")).all()
    recompute_branches(session, rules, year, list(branches), year_end(year, today))
    if year == today.year or year == (today - timedelta(days=31)).year:
        recompute_risks(uow, rules, list(members), today)
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
    if stored is not None and stored.as_of == day and stored.rules_version == rules.version:
        return stored.figures
    return branch_figures(session, rules, branch, year, day)


def _branch_stats(session, rules: Rules, org: OrgCopy, year: int, day: date) -> list[dict]:
    """Every branch under `org`: stored figures when they are as of `day`, else computed."""
    stored = {row.branch_id: row for row in session.scalars(
        select(BranchStat).where(BranchStat.year == year, under(BranchStat.branch_path,
                                                                org.org_id)))}
    branches = session.scalars(select(OrgCopy).where(OrgCopy.kind == "branch",
                                                     under(OrgCopy.path, org.org_id))).all()
    out = []
    for branch in branches:
        row = stored.get(branch.org_id)
        if row is not None and row.as_of == day and row.rules_version == rules.version:
            out.append({"branch_id": branch.org_id, "name": branch.name,
                        "category": branch.category, "compliance": row.compliance,
                        "score": row.score, "light": row.light})
        else:
            figures = branch_figures(session, rules, branch, year, day)
            out.append({key: figures[key] for key in ("branch_id", "name", "category",
                                                      "compliance", "score", "light")})
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
        states = session.scalars(select(MemberState).join(
            OrgCopy, OrgCopy.org_id == MemberState.branch_id).where(
                under(OrgCopy.path, org.org_id))).all()
        for chunk in _chunks(states):
            months: dict[str, dict] = defaultdict(dict)
            for row in session.scalars(select(MemberMonth).where(
                    MemberMonth.member_id.in_([s.member_id for s in chunk]))):
                months[row.member_id][row.month] = row
            for state in chunk:
                record = risk_of(session, rules, state, months[state.member_id], day)
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
