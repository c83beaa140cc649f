"""The dashboard's pages as data: what each page asks the services (all at once, see
reads.Reads.gather) and the tables and charts it shows. No HTTP and no HTML here: service.py
turns requests into calls of these functions, templates/ turns their results into HTML, and
present.xlsx_bytes turns any of their tables into a spreadsheet.

No page asks once per branch or per member: a county's 1,600 branches come from one call
(scoring.branch_overview), a branch's members and their points from one call each.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from orglife.common.auth import Principal
from orglife.common.rules import load_rules
from orglife.common.vocabulary import MEETING_TYPES

from .present import (
    ALERT_NAMES, ITEM_NAMES, LIGHT_ORDER, PER_NAMES, QUEUE_SOURCES, SERVICE_NAMES,
    Badge, Link, Ratio, Table, branch_url, cols, county_day, county_time, mask_email,
    mask_phone, member_url, num, org_url, period_zh, short_period, zh,
)
from . import wording
from .reads import Failed, Reads, call

LIGHT_TONES = {"red": "red", "yellow": "yellow", "green": "green"}
RISK_TONES = {"review": "red", "alert": "red", "notice": "yellow", None: "grey"}
STATUS_TONES = {"failed": "red", "unknown": "yellow", "delivered": "green", "pending": "grey",
                "sending": "blue", "withdrawn": "grey"}
NOTIFICATION_STATUSES = ("pending", "sending", "delivered", "failed", "unknown", "withdrawn")
TOP = 10  # branches in the top and bottom lists


@dataclass
class Period:
    """The year and day a page is shown for (the year and as-of selector)."""
    year: int
    as_of: date | None  # None: today, or the year's last day for a past year
    today: date

    @property
    def day(self) -> date:
        if self.as_of:
            return self.as_of
        return min(self.today, date(self.year, 12, 31))

    @property
    def as_of_arg(self) -> str | None:
        return self.as_of.isoformat() if self.as_of else None

    @property
    def query(self) -> dict:
        out = {}
        if self.year != self.today.year:
            out["year"] = self.year
        if self.as_of:
            out["as_of"] = self.as_of.isoformat()
        return out

    @property
    def years(self) -> list[int]:
        return list(range(self.today.year, self.today.year - 6, -1))


def period_of(args: dict, today: date) -> Period:
    """From the validated query (schemas.PeriodArgs): as_of alone picks its year."""
    as_of = args.get("as_of")
    year = args.get("year") or (as_of.year if as_of else today.year)
    return Period(year, as_of, today)


@dataclass
class Page:
    """What a template shows: a title, breadcrumbs, figures, charts' data and tables."""
    title: str
    template: str
    crumbs: list[Link] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    redirect: str | None = None

    def table(self, key: str) -> Table:
        return self.tables[key]

    def add(self, table: Table) -> Table:
        self.tables[table.key] = table
        return table


def crumbs_for(principal: Principal, path: list[str], names: dict[str, str],
               kinds: dict[str, str], period: Period) -> list[Link]:
    """Links to the organizations above a page that the caller may open (a township admin's
    trail starts at its township, a secretary's at its branch)."""
    out = []
    started = principal.org_id is None
    for ident in path:
        started = started or ident == principal.org_id
        if not started or ident not in names:
            continue
        kind = kinds.get(ident)
        href = branch_url(ident, **period.query) if kind == "branch" else \
            org_url(ident, **period.query)
        out.append(Link(names[ident], href))
    return out


def ancestors(reads: Reads, principal: Principal, path: list[str]) -> tuple[dict, dict]:
    """Names and kinds of the organizations on `path` within the caller's scope (a few
    calls at most: a county, a township, a general branch)."""
    visible = []
    started = principal.org_id is None
    for ident in path:
        started = started or ident == principal.org_id
        if started:
            visible.append(ident)
    if not visible:
        return {}, {}
    got = reads.gather(optional=tuple(f"o{i}" for i in range(len(visible))),
                       **{f"o{i}": call("members", "get_organization", ident)
                          for i, ident in enumerate(visible)})
    names, kinds = {}, {}
    for org in got.values():
        if org:
            names[org["org_id"]], kinds[org["org_id"]] = org["name"], org["kind"]
    return names, kinds


# -- the overview (county or township) ---------------------------------------------------------
def overview(reads: Reads, principal: Principal, org_id: str, period: Period, tz: ZoneInfo,
             health=None, rules=None) -> Page:
    """Counts, lights by township, unevenness by category, top and bottom branches, members
    at risk, the latest alerts, notifications by kind and status; `health` (a callable) is
    asked for the system's health at the same time."""
    import eventlet
    pending_health = eventlet.spawn(health) if health else None
    day = period.day.isoformat()
    got = reads.gather(
        optional=("notes", "failed", "unknown", "meetings"),
        org=call("members", "get_organization", org_id),
        overview=call("scoring", "branch_overview", org_id, period.year, period.as_of_arg),
        risk=call("scoring", "members_at_risk", org_id, period.as_of_arg, 20, 0),
        alerts=call("scoring", "list_alerts", {"org_id": org_id, "limit": 10}),
        meetings=call("meetings", "list_meetings", {
            "under": org_id, "status": "logged", "cancelled": False, "limit": 1,
            "from": f"{period.year}-01-01", "to": day}),
        notes=call("notifications", "notification_summary", org_id),
        failed=call("notifications", "list_notifications",
                    {"org_id": org_id, "status": "failed", "limit": 5}),
        unknown=call("notifications", "list_notifications",
                     {"org_id": org_id, "status": "unknown", "limit": 5}),
    )
    org, ov = got["org"], got["overview"]
    if org["kind"] == "branch":
        return Page("", "", redirect=branch_url(org_id, **period.query))
    if org["kind"] == "group":
        return Page("", "", redirect=branch_url(org["parent_id"], **period.query))
    page = Page(f"{org['name']} 组织生活总览", "overview.html")
    names, kinds = ancestors(reads, principal, org["path"][:-1])
    page.crumbs = crumbs_for(principal, org["path"][:-1], names, kinds, period) + [
        Link(org["name"], org_url(org_id, **period.query))]
    branches = ov["branches"]
    towns = {t["org_id"]: t["name"] for t in ov["townships"]}
    by_town: dict[str | None, list] = defaultdict(list)
    for b in branches:
        by_town[b["township_id"]].append(b)
    grid = []
    for town_id in [*towns, *([None] if None in by_town else [])]:
        members = by_town.get(town_id, [])
        lights = Counter(b["light"] for b in members)
        grid.append({"township_id": town_id, "name": towns.get(town_id, "（直属）"),
                     "href": org_url(town_id, **period.query) if town_id and
                     org["kind"] != "township" else None,
                     "lights": {light: lights.get(light, 0) for light in LIGHT_ORDER},
                     "branches": [{"name": b["name"], "light": b["light"],
                                   "href": branch_url(b["branch_id"], **period.query),
                                   "tip": f"{b['name']}｜{zh(b['light'], 'light')}｜达标率 "
                                          f"{Ratio(b['compliance'])}｜得分 {num(b['score'])}"}
                                  for b in members]})
    meetings = got["meetings"]
    page.data = {
        "org": org, "period": period, "grid": grid,
        "counts": {"branches": len(branches), "members": org.get("members"),
                   "meetings": meetings["total"] if meetings else None,
                   "lights": ov["lights"], "at_risk": ov["at_risk"]},
        "as_of": ov["as_of"], "rules_version": ov["rules_version"],
        # the legend says what the lights mean in this deployment's rules file (SPEC §3)
        "lights_rule": {"red": Ratio((rules or load_rules()).red_below),
                        "yellow": Ratio((rules or load_rules()).yellow_below)},
        "chart_unevenness": {
            "categories": [zh(c["category"], "category") for c in ov["categories"]],
            "mean": [c["mean"] for c in ov["categories"]],
            "min": [c["min"] for c in ov["categories"]],
            "max": [c["max"] for c in ov["categories"]],
            "below": [c["below_0_6"] for c in ov["categories"]],
            "threshold": ov["threshold"]},
        "chart_lights": {
            "townships": [row["name"] for row in grid],
            **{light: [row["lights"][light] for row in grid] for light in LIGHT_ORDER}},
        "notifications_missing": any(isinstance(got[k], Failed)
                                     for k in ("notes", "failed", "unknown")),
    }
    branch_link = {b["branch_id"]: Link(b["name"], branch_url(b["branch_id"], **period.query))
                   for b in branches}

    def ranked_rows(items):
        return [[b["rank"], branch_link[b["branch_id"]], towns.get(b["township_id"], ""),
                 zh(b["category"], "category"), b["score"], Ratio(b["compliance"]),
                 Badge(zh(b["light"], "light"), LIGHT_TONES.get(b["light"], "grey"))]
                for b in items]
    ordered = sorted(branches, key=lambda b: (b["rank"], b["branch_id"]))
    rank_cols = cols("名次", "支部", "乡镇", "类别", ("得分", "num"), ("达标率", "num"), "预警")
    page.add(Table("townships", "各乡镇支部预警", cols(
        "乡镇", ("支部数", "num"), ("红灯", "num"), ("黄灯", "num"), ("绿灯", "num"),
        ("平均达标率", "num")), [
        [Link(row["name"], row["href"]) if row["href"] else row["name"],
         len(by_town.get(row["township_id"], [])), row["lights"]["red"],
         row["lights"]["yellow"], row["lights"]["green"],
         Ratio(_mean([b["compliance"] for b in by_town.get(row["township_id"], [])]))]
        for row in grid]))
    page.add(Table("branches", "支部排名与预警（全部）", cols(
        "名次", "支部编号", "支部", "乡镇", "类别", "预警", ("达标率", "num"), ("参会率", "num"),
        ("得分", "num")), [
        [b["rank"], b["branch_id"], branch_link[b["branch_id"]],
         towns.get(b["township_id"], ""), zh(b["category"], "category"),
         Badge(zh(b["light"], "light"), LIGHT_TONES.get(b["light"], "grey")),
         Ratio(b["compliance"]), Ratio(b["attendance_rate"]), b["score"]] for b in ordered]))
    page.add(Table("top", f"得分前{TOP}名支部", rank_cols, ranked_rows(ordered[:TOP])))
    page.add(Table("bottom", f"得分后{TOP}名支部", rank_cols,
                   ranked_rows(list(reversed(ordered))[:TOP])))
    threshold = f"{ov['threshold']:g}"
    page.add(Table("unevenness", "各类别支部达标情况（不平衡）", cols(
        "类别", ("支部数", "num"), ("平均达标率", "num"), ("最低", "num"), ("最高", "num"),
        (f"低于{threshold}", "num")), [
        [zh(c["category"], "category"), c["branches"], Ratio(c["mean"]), Ratio(c["min"]),
         Ratio(c["max"]), c["below_0_6"]] for c in ov["categories"]],
        row_tones=["red" if c["below_0_6"] else "" for c in ov["categories"]]))
    risk = got["risk"]
    page.add(Table("at_risk", "连续未参加组织生活的党员", cols(
        "党员", "支部", ("连续未参加（月）", "num"), "等级", "未参加的月份"), [
        [Link(item["name"] or item["member_id"], member_url(item["member_id"], **period.query)),
         branch_link.get(item["branch_id"], item["branch_id"]), item["months"],
         Badge(zh(item["level"], "risk_level") or "未到提醒", RISK_TONES.get(item["level"],
                                                                          "grey")),
         "、".join(period_zh(m["month"]) for m in item.get("months_list") or [])]
        for item in risk["items"]], total=risk["total"]))
    alerts = got["alerts"]
    member_names = {item["member_id"]: item["name"] for item in risk["items"] if item["name"]}
    page.add(Table("alerts", "最新预警", cols("时间", "类型", "支部", "党员", "详情"), [
        [county_time(a["raised_at"], tz), ALERT_NAMES.get(a["kind"], a["kind"]),
         branch_link.get(a["branch_id"], a["branch_id"] or ""),
         Link((a.get("data") or {}).get("name") or member_names.get(a["member_id"])
              or a["member_id"], member_url(a["member_id"], **period.query))
         if a["member_id"] else "", alert_detail(a)] for a in alerts["items"]],
        total=alerts["total"],
        row_tones=["red" if a["kind"] in ("branch_overdue", "branch_silent") else "yellow"
                   for a in alerts["items"]]))
    notes = got["notes"]
    pivot: dict[str, Counter] = defaultdict(Counter)
    for row in (notes["items"] if notes else []):
        pivot[row["kind"]][row["status"]] += row["count"]
    page.add(Table("notifications", "通知（按类型与状态）", cols(
        "类型", *[(zh(s, "notification_status"), "num") for s in NOTIFICATION_STATUSES],
        ("合计", "num")), [
        [zh(kind, "notification_kind")] + [counts.get(s, 0) for s in NOTIFICATION_STATUSES]
        + [sum(counts.values())] for kind, counts in sorted(pivot.items())],
        empty="暂无通知" if notes else "通知服务未应答",
        footer=["合计"] + [sum(c.get(s, 0) for c in pivot.values())
                          for s in NOTIFICATION_STATUSES]
        + [sum(sum(c.values()) for c in pivot.values())] if pivot else None))
    troubled = [n for key in ("failed", "unknown") if got[key] for n in got[key]["items"]]
    troubled.sort(key=lambda n: n["created_at"] or "", reverse=True)
    page.add(Table("notifications_failed", "发送失败或结果不明的通知", cols(
        "时间", "类型", "渠道", "状态", "接收人", ("尝试次数", "num"), "原因"), [
        [county_time(n["created_at"], tz), zh(n["kind"], "notification_kind"),
         zh(n["channel"], "channel"),
         Badge(zh(n["status"], "notification_status"), STATUS_TONES.get(n["status"], "grey")),
         named(n.get("recipient_name"), n["recipient_id"]), n["attempts"],
         wording.failure_reason(n.get("last_error"))]
        for n in troubled],
        total=sum(got[k]["total"] for k in ("failed", "unknown") if got[k])))
    if pending_health is not None:
        add_health(page, pending_health.wait())
    return page


def named(name: str | None, ident: str) -> str:
    """"张三（m1）": whom a row is about, with the id an admin can search for."""
    return f"{name}（{ident}）" if name else ident


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def alert_detail(alert: dict) -> str:
    data = alert.get("data") or {}
    kind = alert["kind"]
    if kind == "branch_overdue":
        return f"{zh(data.get('type'), 'meeting_type')} {period_zh(data.get('period'))} 未开展" \
            + (f"（党小组 {data['group_id']}）" if data.get("group_id") else "")
    if kind == "branch_due_soon":
        return f"{zh(data.get('type'), 'meeting_type')} {period_zh(data.get('period'))} " \
               f"将于 {data.get('due_on', '')} 到期"
    if kind == "branch_silent":
        return f"已 {data.get('days')} 天未开展任何组织生活"
    if kind == "member_at_risk":
        return f"连续 {data.get('months')} 个月未参加（{zh(data.get('level'), 'risk_level')}）"
    return ""


# -- the system's health -------------------------------------------------------------------------
def system_health(reads: Reads, amqp_uri: str, system, timeout: float = 3.0) -> dict:
    """Each service the dashboard reads from: instances consuming its RPC queue, whether it
    answers `health`, its outbox backlog; every consumer queue of the declaration with its
    depth and consumers, and its parking queue's depth (messages parked with a reason). Read
    with the dashboard's own broker account through passive declares, which need no rights;
    unacknowledged counts would need the management API, which the dashboard has no account
    for."""
    from kombu import Connection
    services = [name for name in reads.proxies]
    rows, queues, consumers = [], [], {}
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as conn:
            for name in services:
                consumers[name] = _passive(conn, f"rpc-{name}")
            for sub in system.subscriptions:
                depth = _passive(conn, sub.queue_name)
                parked = _passive(conn, sub.parking_queue_name)
                queues.append({"queue": sub.queue_name, "source": sub.source,
                               "consumer": sub.consumer,
                               "messages": depth[0] if depth else None,
                               "consumers": depth[1] if depth else None,
                               "parked": parked[0] if parked else None})
        broker_ok = True
    except Exception:  # noqa: BLE001 - the broker itself is down: say so
        broker_ok = False
    asking = {name: call(name, "health") for name in services
              if (consumers.get(name) or (None, 0))[1]}
    answers = reads.gather(optional=tuple(asking), timeout=timeout, **asking) if asking else {}
    for name in services:
        found = consumers.get(name)
        answer = answers.get(name)
        rows.append({"service": name, "instances": found[1] if found else 0,
                     "answers": bool(answer), "outbox_backlog": answer.get("outbox_backlog")
                     if answer else None, "pending": answer.get("pending") if answer else None})
    return {"broker": broker_ok, "services": rows, "queues": queues}


def _passive(conn, queue: str):
    """(messages, consumers) of a queue, or None when it does not exist."""
    channel = conn.channel()
    try:
        _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
        return messages, consumers
    except Exception:  # noqa: BLE001 - not declared
        return None
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001
            pass


def add_health(page: Page, health: dict) -> None:
    page.data["health"] = {"broker": health["broker"],
                           "ok": health["broker"] and all(r["answers"] for r in health["services"])
                           and not any(q["parked"] for q in health["queues"])}
    page.add(Table("services", "服务运行状态", cols(
        "服务", ("实例", "num"), "应答", ("出站积压", "num")), [
        [SERVICE_NAMES.get(r["service"], r["service"]), r["instances"],
         Badge("正常" if r["answers"] else "未应答", "green" if r["answers"] else "red"),
         r["outbox_backlog"] if r["outbox_backlog"] is not None else "—"]
        for r in health["services"]],
        row_tones=["" if r["answers"] else "red" for r in health["services"]],
        empty="消息队列不可达"))
    page.add(Table("queues", "消息队列", cols(
        "队列", "来源", "消费服务", ("待处理", "num"), ("消费者", "num"), ("搁置", "num")), [
        [q["queue"], QUEUE_SOURCES.get(q["source"], q["source"]),
         SERVICE_NAMES.get(q["consumer"], q["consumer"]),
         "—" if q["messages"] is None else q["messages"],
         "—" if q["consumers"] is None else q["consumers"],
         Badge(str(q["parked"]), "red") if q["parked"] else (q["parked"] if q["parked"]
                                                               is not None else "—")]
        for q in health["queues"]],
        row_tones=["red" if q["parked"] or q["consumers"] == 0 else "" for q in health["queues"]],
        note="搁置：无法处理、等待人工处理的消息（./orglife parked list）。",
        empty="消息队列不可达"))


# -- a branch --------------------------------------------------------------------------------
def branch(reads: Reads, principal: Principal, branch_id: str, period: Period, tz: ZoneInfo,
           rules=None) -> Page:
    """Slots met and missed by type and period, meetings with attendance, quorum and
    warnings, attendance rate, score, members with their points."""
    day = period.day.isoformat()
    got = reads.gather(
        optional=("figures", "slots", "scores", "risk"),
        org=call("members", "get_organization", branch_id),
        figures=call("scoring", "branch_compliance", branch_id, period.year, period.as_of_arg),
        slots=call("scoring", "branch_slots", branch_id, period.year, period.as_of_arg),
        meetings=call("meetings", "list_meetings", {
            "branch_id": branch_id, "from": f"{period.year}-01-01", "to": day, "limit": 1000}),
        members=call("members", "list_members", {"branch_id": branch_id, "limit": 1000}),
        scores=call("scoring", "ranking", branch_id, period.year, "member", 5000),
        risk=call("scoring", "members_at_risk", branch_id, period.as_of_arg, 1000, 0, True),
    )
    org = got["org"]
    if org["kind"] != "branch":
        return Page("", "", redirect=(branch_url(org["parent_id"], **period.query)
                                      if org["kind"] == "group" else
                                      org_url(branch_id, **period.query)))
    for key in ("figures", "slots", "scores", "risk"):
        if isinstance(got[key], Failed):
            raise got[key].error
    figures, slots = got["figures"], got["slots"]
    page = Page(f"{org['name']}", "branch.html")
    names, kinds = ancestors(reads, principal, org["path"][:-1])
    page.crumbs = crumbs_for(principal, org["path"][:-1], names, kinds, period) + [
        Link(org["name"], branch_url(branch_id, **period.query))]
    township = next((names[i] for i in org["path"] if kinds.get(i) == "township"), "")
    page.data = {"org": org, "period": period, "figures": figures, "township": township,
                 "light": Badge(zh(figures["light"], "light"),
                                LIGHT_TONES.get(figures["light"], "grey")),
                 "grid": slot_grid(slots)}
    # slots by type
    per = {r["type"]: r for r in slots["requirements"]}
    order = {t: i for i, t in enumerate(MEETING_TYPES)}
    by_type = figures.get("by_type") or {}
    missed_by_type = Counter(m["type"] for m in figures.get("missed") or [])
    page.add(Table("by_type", "各类会议达标情况", cols(
        "会议类型", "要求", ("应达标", "num"), ("已达标", "num"), ("未达标", "num"),
        ("已开展", "num"), ("达标率", "num")), [
        [zh(t, "meeting_type"), requirement_text(per.get(t)), by_type[t]["required"],
         by_type[t]["met"], missed_by_type.get(t, 0), by_type[t]["held"],
         Ratio(by_type[t]["met"] / by_type[t]["required"] if by_type[t]["required"] else None)]
        for t in sorted(by_type, key=lambda t: (order.get(t, 99), t))],
        footer=["合计", "", figures["required"], figures["met"],
                len(figures.get("missed") or []), figures["held"],
                Ratio(figures["compliance"])]))
    page.add(Table("slots", "应开展的会议（按类型与期间）", cols(
        "会议类型", "党小组", "期间", "起", "止", "状态", ("有效会议", "num")), [
        [zh(s["type"], "meeting_type"), s["group_id"] or "", period_zh(s["period"]),
         s["start"], s["end"], Badge(*slot_state(s)), s["held"]] for s in slots["slots"]]))
    page.add(Table("missed", "未达标的期间", cols("会议类型", "期间", "党小组"), [
        [zh(m["type"], "meeting_type"), period_zh(m["period"]), m.get("group_id") or ""]
        for m in figures.get("missed") or []], empty="没有未达标的期间",
        row_tones=["red"] * len(figures.get("missed") or [])))
    meetings = got["meetings"]["items"]
    page.add(Table("meetings", "会议与出席", cols(
        "日期", "类型", "主题", ("应到", "num"), ("出席", "num"), ("其中线上", "num"),
        ("请假", "num"), ("缺席", "num"), "法定人数", "状态", "提示"), [
        [county_time(m["held_at"], tz), zh(m["type"], "meeting_type"), m["topic"] or "",
         m["summary"]["expected"], m["summary"]["present"], m["summary"]["remote"],
         m["summary"]["leave"], m["summary"]["absent"], quorum_text(m), meeting_state(m),
         "；".join(warning_text(w) for w in m.get("warnings") or [])]
        for m in meetings], total=got["meetings"]["total"],
        row_tones=[("red" if m["quorum_met"] is False or m["cancelled"] else
                    "yellow" if m.get("warnings") else "") for m in meetings]))
    scores = {i["member_id"]: i for i in got["scores"]["items"]}
    risks = {i["member_id"]: i for i in got["risk"]["items"]}
    members = got["members"]["items"]
    members.sort(key=lambda m: (m["status"] not in ("formal", "probationary"),
                                -(scores.get(m["member_id"]) or {}).get("score", -1),
                                m["member_id"]))
    page.add(Table("members", "党员与积分", cols(
        "党员", "编号", "身份", "党小组", "支委", "流动党员", "手机", ("积分", "num"),
        "等次/转正建议", "预警"), [
        [Link(m["name"], member_url(m["member_id"], **period.query)), m["member_id"],
         zh(m["status"], "member_status"), m.get("group_id") or "",
         "是" if m.get("committee_member") else "",
         ("是" + (f"（{m['mobile_location']}）" if m.get("mobile_location") else ""))
         if m.get("mobile") else "", mask_phone(m.get("phone")),
         (scores.get(m["member_id"]) or {}).get("score", ""),
         standing_text(scores.get(m["member_id"])),
         risk_badge(risks.get(m["member_id"]))] for m in members],
        total=got["members"]["total"],
        # the ranking's scores are the year's as recorded; a member's page counts to the day
        note="积分与等次为本年度已记录的全部会议与活动，不随所选日期回溯；逐日积分见党员页"
        if period.as_of else ""))
    page.data["chart_slots"] = {
        "types": [zh(t, "meeting_type") for t in sorted(by_type, key=lambda t: order.get(t, 99))],
        "met": [by_type[t]["met"] for t in sorted(by_type, key=lambda t: order.get(t, 99))],
        "missed": [missed_by_type.get(t, 0)
                   for t in sorted(by_type, key=lambda t: order.get(t, 99))]}
    return page


def requirement_text(requirement: dict | None) -> str:
    if not requirement:
        return ""
    text = f"{PER_NAMES.get(requirement['per'], requirement['per'])}至少{requirement['at_least']}次"
    return text + ("（每个党小组）" if requirement.get("per_group") else "")


def slot_state(slot: dict) -> tuple[str, str]:
    if slot["met"]:
        return "已达标", "green"
    if slot["ended"]:
        return "未达标", "red"
    if slot["due_soon"]:
        return "即将到期", "yellow"
    return "进行中", "grey"


def slot_grid(slots: dict) -> dict:
    """Rows of (type, group) × the year's twelve months; a quarter's or the year's slot spans
    its months (a cell per slot, `span` months wide)."""
    order = {t: i for i, t in enumerate(MEETING_TYPES)}
    rows: dict[tuple, list] = defaultdict(list)
    for slot in slots["slots"]:
        rows[(slot["type"], slot["group_id"])].append(slot)
    out = []
    for (type_, group), items in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99),
                                                                      kv[0][1] or "")):
        cells, month = [], 1
        for slot in sorted(items, key=lambda s: s["start"]):
            start = int(slot["start"][5:7])
            end = int(slot["end"][5:7])
            if start > month:
                cells.append({"span": start - month, "blank": True})
            label, tone = slot_state(slot)
            cells.append({"span": end - start + 1, "blank": False, "label": label, "tone": tone,
                          "period": short_period(slot["period"]), "held": slot["held"],
                          "tip": f"{zh(type_, 'meeting_type')} {period_zh(slot['period'])}："
                                 f"{label}，有效会议 {slot['held']} 次"})
            month = end + 1
        if month <= 12:
            cells.append({"span": 13 - month, "blank": True})
        out.append({"type": zh(type_, "meeting_type"), "group": group, "cells": cells})
    return {"rows": out, "months": [f"{m}月" for m in range(1, 13)]}


def quorum_text(meeting: dict) -> str:
    quorum = meeting.get("quorum") or {}
    if meeting.get("status") == "scheduled":
        return ""
    if not quorum.get("rule"):
        return "不适用"
    verdict = "达到" if quorum.get("met") else "未达到"
    return f"{verdict}（{quorum.get('present')}/{quorum.get('eligible')}，需{quorum.get('needed')}）"


# a warning the meetings service recorded before it gave `code` and `member_status`
_OLD_NON_MEMBER = re.compile(r"""^(['"])(?P<member_id>.*)\1 (?:was not yet a member|"""
                             r"was (?P<member_status>\w+)) on that date")


def warning_text(warning: dict) -> str:
    """A meeting's warning in Chinese (services/meetings/domain.py words it in English for
    the CLI); one of a kind this page does not know keeps the service's text."""
    facts = dict(warning)
    if warning.get("code") is None:
        old = _OLD_NON_MEMBER.match(warning.get("message") or "")
        if old is None:
            return warning.get("message", "")
        facts.update(old.groupdict(), code="non_member_attendee")
    if facts["code"] == "non_member_attendee":
        status = facts.get("member_status")
        when = f"当日已不在册（{zh(status, 'member_status')}）" if status else "当日尚未入党"
        return f"{facts.get('member_id')} {when}，按非党员参会记录，不计分"
    return warning.get("message", "")


def meeting_state(meeting: dict) -> Badge:
    if meeting.get("cancelled"):
        return Badge("已取消", "grey")
    if meeting.get("status") == "scheduled":
        return Badge("已安排", "blue")
    if meeting.get("quorum_met") is False:
        return Badge("不计入达标", "red")
    return Badge("有效", "green")


def standing_text(score: dict | None) -> str:
    if not score:
        return ""
    if score.get("grade") is None and score.get("recommendation") is not None:
        return f"转正建议：{zh(score['recommendation'], 'recommendation')}"
    return zh(score.get("grade"), "grade")


def risk_badge(risk: dict | None):
    if not risk:
        return ""
    return Badge(f"连续{risk['months']}个月未参加" + (f"·{zh(risk['level'], 'risk_level')}"
                                                   if risk.get("level") else ""),
                 RISK_TONES.get(risk.get("level"), "grey"))


# -- a member --------------------------------------------------------------------------------
def member(reads: Reads, principal: Principal, member_id: str, period: Period, tz: ZoneInfo,
           rules=None) -> Page:
    """The participation record and the score line by line (each meeting or activity, its
    points, caps, absences), the grade or recommendation, the at-risk streak with the
    meetings missed; the phone masked."""
    first = reads.gather(member=call("members", "get_member", member_id),
                         score=call("scoring", "member_score", member_id, period.year,
                                    period.as_of_arg))
    person, score = first["member"], first["score"]
    branch_id = person["branch_id"]
    more = reads.gather(optional=("branch", "risk"),
                        branch=call("members", "get_organization", branch_id),
                        risk=call("scoring", "members_at_risk", branch_id, period.as_of_arg,
                                  1000, 0, True))
    branch_org = more["branch"] or {"org_id": branch_id, "name": branch_id, "path": [branch_id]}
    page = Page(f"{person['name']}", "member.html")
    path = branch_org.get("path") or [branch_id]
    names, kinds = ancestors(reads, principal, path[:-1])
    names[branch_id], kinds[branch_id] = branch_org["name"], "branch"
    page.crumbs = crumbs_for(principal, path, names, kinds, period) + [
        Link(person["name"], member_url(member_id, **period.query))]
    items = person.get("participation", {}).get("items") or []
    topics = {i["ref"]: i.get("topic") for i in items}
    risk = next((i for i in (more["risk"]["items"] if more["risk"] else [])
                 if i["member_id"] == member_id), None)
    lines = score.get("breakdown") or []
    raw = sum(line.get("points") or 0 for line in lines)
    page.data = {"person": person, "period": period, "score": score, "branch": branch_org,
                 "phone": mask_phone(person.get("phone")),
                 "email": mask_email(person.get("email")),
                 "standing": standing_text(score), "risk": risk, "raw": raw,
                 "risk_missing": isinstance(more["risk"], Failed)}
    page.add(Table("breakdown", f"{period.year}年积分明细（逐项）", cols(
        "日期", "事项", "类型", "支部", "主题", ("积分", "num"), "封顶", "编号"), [
        [line.get("date") or "", item_text(line), line_type(line),
         names.get(line.get("branch_id"), line.get("branch_id") or ""),
         topics.get(line.get("ref")) or "",
         line.get("points"), "封顶" if line.get("capped") else "", line.get("ref") or ""]
        for line in lines],
        row_tones=[("red" if line.get("item") == "absence" else
                    "yellow" if line.get("capped") else "") for line in lines],
        footer=["合计", "", "", "", "", raw, "", ""],
        note=(f"明细合计 {raw} 分，按计分范围计为 {score['score']} 分。"
              if score.get("clamped") else f"明细合计 {raw} 分 = 积分 {score['score']} 分。")))
    table = rules.point_table if rules is not None and \
        getattr(rules, "version", None) == score.get("rules_version") else {}
    buckets: dict[str, dict] = {}
    for line in lines[1:]:
        key = bucket_of(line)
        entry = buckets.setdefault(key, {"count": 0, "points": 0, "capped": 0,
                                         "label": f"{item_text(line)}·{line_type(line)}"
                                         if line.get("item") in ("attended", "activity")
                                         else item_text(line)})
        entry["count"] += 1
        entry["points"] += line.get("points") or 0
        entry["capped"] += bool(line.get("capped"))
    page.add(Table("by_kind", "按类别汇总（年度上限）", cols(
        "类别", ("次数", "num"), ("得分", "num"), ("年度上限", "num"), ("被封顶", "num")), [
        [entry["label"], entry["count"], entry["points"], cap_text(table, key),
         entry["capped"]] for key, entry in sorted(buckets.items())]))
    year_items = [i for i in items if (county_day(i.get("held_at"), tz) or "")[:4]
                  == str(period.year)]
    page.add(Table("participation", f"{period.year}年参加组织生活记录", cols(
        "时间", "类型", "支部", "出席情况", "线上", "外支部参会", "主题"), [
        [county_time(i.get("held_at"), tz),
         zh(i["type"], "activity_kind" if i.get("kind") == "activity" else "meeting_type"),
         names.get(i.get("branch_id"), i.get("branch_id") or ""),
         "完成" if i.get("status") == "done" else zh(i.get("status"), "attendance"),
         "是" if i.get("remote") else "", "是" if i.get("visiting") else "",
         i.get("topic") or ""] for i in year_items],
        row_tones=["red" if i.get("status") == "absent" else "" for i in year_items]))
    streak_rows = [[period_zh(month["month"]), zh(m.get("type"), "meeting_type"),
                    m.get("date"), names.get(m.get("branch_id"), m.get("branch_id") or ""),
                    m.get("meeting_id")]
                   for month in (risk or {}).get("months_list") or []
                   for m in (month.get("meetings") or [{}])]
    page.add(Table("streak", "连续未参加的月份与会议", cols(
        "月份", "未参加的会议", "日期", "支部", "会议编号"), streak_rows,
        empty="没有连续未参加组织生活的记录"))
    running, points = [], 0
    for line in lines:
        points += line.get("points") or 0
        running.append([line.get("date") or f"{period.year}-01-01", points])
    page.data["chart_score"] = {"points": running, "year": period.year}
    return page


def cap_text(table: dict, bucket: str):
    """A kind's yearly cap from the rules the score was computed with (blank when the
    dashboard's rules file is another version: it would not be the cap that applied)."""
    if bucket not in table:
        return ""
    points, cap = table[bucket]
    if cap is None:
        return "不设上限" if points < 0 else "—"
    return cap


def bucket_of(line: dict) -> str:
    item = line.get("item")
    if item == "activity":
        return f"activity:{line.get('type')}"
    if item == "attended":
        return f"meeting:{line.get('type')}"
    return item or ""


def item_text(line: dict) -> str:
    text = ITEM_NAMES.get(line.get("item"), line.get("item") or "")
    return text + ("（线上）" if line.get("remote") else "")


def line_type(line: dict) -> str:
    domain = "activity_kind" if line.get("item") == "activity" else "meeting_type"
    return zh(line.get("type"), domain)


# -- the landing page ----------------------------------------------------------------------------
def landing(reads: Reads, principal: Principal, period: Period) -> Page:
    """Where a user starts: a township admin at its township, a secretary at its branch, a
    county admin at its county (or a list when the deployment holds several)."""
    if principal.org_id:
        org = reads.one("members", "get_organization", principal.org_id)
        target = branch_url if org["kind"] == "branch" else org_url
        return Page("", "", redirect=target(principal.org_id, **period.query))
    counties = reads.one("members", "list_organizations", {"kind": "county", "limit": 100})
    if len(counties["items"]) == 1:
        return Page("", "", redirect=org_url(counties["items"][0]["org_id"], **period.query))
    page = Page("选择县", "orgs.html")
    page.add(Table("counties", "县", cols("县", "编号"), [
        [Link(c["name"], org_url(c["org_id"], **period.query)), c["org_id"]]
        for c in counties["items"]], empty="还没有登记任何组织：./orglife org add ..."))
    return page
