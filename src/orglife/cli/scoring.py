"""`orglife score|compliance|ranking|unevenness|at-risk|alerts|recalculate`: the scoring
service's reports (SPEC §3, §4), each explained line by line.

Top-level commands (this `app` has no name). Every report prints tables for people, `--json`
for scripts (the service's answer as it is) and `--xlsx FILE` for the office's files (Chinese
headers, one sheet per table).
"""
from __future__ import annotations

import inspect
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, Sheet, XlsxOpt, chinese, coded, console, county_time, err_console,
    items_table, percent, print_json, rpc, show_record, text, write_xlsx,
)
from orglife.common.vocabulary import period_zh

app = typer.Typer()


def command(name: str):
    """`app.command`, its help the docstring with each paragraph on one line (help screens
    wrap it to the terminal instead of keeping the source's line breaks)."""
    def register(function):
        paragraphs = inspect.cleandoc(function.__doc__ or "").split("\n\n")
        return app.command(name, help="\n\n".join(" ".join(p.split()) for p in paragraphs))(
            function)
    return register

LIGHT_COLORS = {"red": "red", "yellow": "yellow", "green": "green"}
# What each line of a score is (no vocabulary domain of its own: SPEC §3 "breakdown").
ITEM_NAMES = {"base": "基础分", "attended": "出席", "absence": "缺席", "leave": "请假",
              "activity": "活动"}
ALERT_NAMES = {"branch_silent": "支部长期未开展组织生活", "branch_overdue": "组织生活逾期未开展",
               "branch_due_soon": "组织生活即将到期", "member_at_risk": "党员连续未参加组织生活"}
RISK_STYLES = {"notice": "yellow", "alert": "red", "review": "bold red"}
PERCENT = "0.0%"


# -- options -------------------------------------------------------------------------------------
def check_day(value: Optional[str]) -> Optional[str]:
    if value is not None:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


YearOpt = typer.Option(None, "--year", help="Calendar year (default: the current year).")
AsOfOpt = typer.Option(None, "--as-of", metavar="DATE", callback=check_day,
                       help="Count up to this day, YYYY-MM-DD (default: today; not in the "
                            "future).")


class Level(str, Enum):
    branch = "branch"
    member = "member"


class AlertKind(str, Enum):
    branch_silent = "branch_silent"
    branch_overdue = "branch_overdue"
    branch_due_soon = "branch_due_soon"
    member_at_risk = "member_at_risk"


# -- formatting ------------------------------------------------------------------------------------
def light_text(code: Optional[str]) -> str:
    """三色预警 in its colour: `red 红灯` in red."""
    if not code:
        return ""
    return f"[{LIGHT_COLORS.get(code, 'white')}]● {coded('light')(code)}[/]"


def points_text(line: dict) -> str:
    points = line.get("points") or 0
    return str(points) if line.get("item") == "base" else f"{points:+d}"


def type_domain(line: dict) -> str:
    return "activity_kind" if line.get("item") == "activity" else "meeting_type"


def line_type(line: dict) -> str:
    return coded(type_domain(line))(line.get("type"))


def item_text(line: dict) -> str:
    item = line.get("item") or ""
    name = ITEM_NAMES.get(item)
    shown = f"{item} {name}" if name else item
    return shown + (" (remote 线上)" if line.get("remote") else "")


def item_chinese(line: dict) -> str:
    return ITEM_NAMES.get(line.get("item"), line.get("item") or "") + \
        ("（线上）" if line.get("remote") else "")


def standing(result: dict) -> tuple[str, str]:
    """(what is shown, its value): a grade, or for a probationary member the recommendation."""
    if result.get("recommendation") is not None and result.get("grade") is None:
        return "recommendation", coded("recommendation")(result["recommendation"])
    return "grade", coded("grade")(result.get("grade"))


def save(path: Optional[Path], sheets: list) -> None:
    if path is None:
        return
    write_xlsx(path, sheets)
    err_console.print(f"wrote {path}")


def answer(result: dict, as_json: bool, show, xlsx: Optional[Path], sheets) -> None:
    """Write the file (if asked), then print the tables or the JSON."""
    save(xlsx, sheets(result) if xlsx else [])
    if as_json:
        print_json(result)
    else:
        show(result)


# -- score -----------------------------------------------------------------------------------------
def show_score(result: dict) -> None:
    key, value = standing(result)
    show_record({"member_id": result["member_id"], "name": result.get("name"),
                 "branch_id": result.get("branch_id"), "status": result.get("status"),
                 "year": result.get("year"), "score": result.get("score"), key: value,
                 "rules_version": result.get("rules_version")},
                f"score of {result['member_id']} {result.get('name') or ''}".rstrip(),
                {"status": coded("member_status")})
    lines = result.get("breakdown") or []
    console.print(breakdown_table(lines))
    total = sum(line.get("points") or 0 for line in lines)
    raw = result.get("raw", total)
    if result.get("clamped"):
        console.print(f"sum of the lines: raw {raw} → clamped to {result['score']}")
    else:
        console.print(f"sum of the lines: {raw} = score {result['score']}")


def line_style(line: dict) -> Optional[str]:
    if line.get("item") == "absence":
        return "red"
    if line.get("capped"):
        return "yellow"
    return None


def breakdown_table(lines: list[dict]):
    rows = [{"date": line.get("date") or "", "item": item_text(line),
             "type": line_type(line), "branch": line.get("branch_id"),
             "ref": line.get("ref"), "points": points_text(line),
             "capped": "capped 封顶" if line.get("capped") else "", "_line": line}
            for line in lines]
    return items_table(rows, ["date", "item", "type", "branch", "ref",
                              Column("points", format=text), "capped"],
                       f"breakdown ({len(lines)} lines)",
                       row_style=lambda row: line_style(row["_line"]))


def score_sheets(result: dict) -> list[Sheet]:
    lines = result.get("breakdown") or []
    rows = [[line.get("date"), chinese(line.get("type"), type_domain(line)),
             line.get("branch_id"), item_chinese(line), line.get("points"),
             "是" if line.get("capped") else None, line.get("ref")] for line in lines]
    rows.append([None, None, None, "合计", sum(line.get("points") or 0 for line in lines),
                 None, None])
    grade = result.get("grade")
    recommendation = result.get("recommendation")
    summary = [["党员编号", result.get("member_id")], ["姓名", result.get("name")],
               ["支部", result.get("branch_id")],
               ["身份", chinese(result.get("status"), "member_status")],
               ["年度", result.get("year")], ["明细合计", result.get("raw")],
               ["积分", result.get("score")]]
    if result.get("clamped"):
        summary.append(["说明", f"明细合计{result.get('raw')}分，按计分范围计为"
                                f"{result.get('score')}分"])
    if recommendation is not None and grade is None:
        summary.append(["转正建议", chinese(recommendation, "recommendation")])
    else:
        summary.append(["等次", chinese(grade, "grade")])
    summary.append(["计分规则版本", result.get("rules_version")])
    return [Sheet("积分明细", ["日期", "类型", "支部", "事项", "积分", "封顶", "编号"], rows),
            Sheet("积分汇总", ["项目", "内容"], summary)]


@command("score")
def score(member_id: str = typer.Argument(..., metavar="MEMBER", help="member id"),
          year: Optional[int] = YearOpt, as_of: Optional[str] = AsOfOpt,
          as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """A member's points for a year, line by line, and grade (with --as-of: counting what
    was held by that day).

    The base, each meeting or activity (and whether a yearly cap cut it), each unexcused
    absence, summing to the score before the clamp; the grade, or for a probationary member
    the recommendation."""
    with rpc("scoring") as scoring:
        result = scoring.member_score(member_id, year, as_of)
    answer(result, as_json, show_score, xlsx, score_sheets)


# -- compliance ------------------------------------------------------------------------------------
def by_type_rows(result: dict) -> list[dict]:
    from orglife.common.vocabulary import MEETING_TYPES
    by_type = result.get("by_type") or {}
    order = {t: i for i, t in enumerate(MEETING_TYPES)}
    return [{"type": t, **by_type[t], "compliance": (by_type[t]["met"] / by_type[t]["required"]
                                                     if by_type[t]["required"] else None)}
            for t in sorted(by_type, key=lambda t: (order.get(t, len(order)), t))]


def show_compliance(result: dict) -> None:
    show_record({key: result.get(key) for key in (
        "branch_id", "name", "category", "year", "as_of", "required", "met", "held",
        "compliance", "attendance_rate", "score", "light", "silent_days", "last_meeting_on",
        "rules_version")},
        f"compliance of {result['branch_id']} {result.get('name') or ''}".rstrip(),
        {"category": coded("category"), "compliance": percent, "attendance_rate": percent,
         "light": light_text})
    rows = by_type_rows(result)
    rows.append({"type": "overall", "required": result.get("required"),
                 "met": result.get("met"), "held": result.get("held"),
                 "compliance": result.get("compliance")})
    console.print(items_table(
        rows, [Column("type", format=lambda t: "overall 合计" if t == "overall"
                      else coded("meeting_type")(t)),
               "required", "met", "held", Column("compliance", format=percent)],
        "by meeting type", row_style=lambda r: "bold" if r["type"] == "overall" else None))
    slot_columns = [Column("type", format=coded("meeting_type")), "period",
                    Column("group_id", "group")]
    missed = result.get("missed") or []
    console.print(items_table(missed, slot_columns, f"missed slots ({len(missed)})",
                              row_style=lambda _: "red"))
    due = result.get("due_soon") or []
    if due:
        console.print(items_table(due, [*slot_columns, "due"], f"due soon ({len(due)})",
                                  row_style=lambda _: "yellow"))


def compliance_sheets(result: dict) -> list[Sheet]:
    per_type = [[chinese(r["type"], "meeting_type"), r["required"], r["met"], r["held"],
                 r["compliance"]] for r in by_type_rows(result)]
    per_type.append(["合计", result.get("required"), result.get("met"), result.get("held"),
                     result.get("compliance")])
    slot = ["会议类型", "期间", "党小组"]
    missed = [[chinese(s["type"], "meeting_type"), period_zh(s["period"]), s.get("group_id")]
              for s in result.get("missed") or []]
    due = [[chinese(s["type"], "meeting_type"), period_zh(s["period"]), s.get("group_id"),
            s.get("due")] for s in result.get("due_soon") or []]
    summary = [["支部编号", result.get("branch_id")], ["支部名称", result.get("name")],
               ["支部类别", chinese(result.get("category"), "category")],
               ["年度", result.get("year")], ["统计截至", result.get("as_of")],
               ["应达标", result.get("required")], ["已达标", result.get("met")],
               ["已开展", result.get("held")], ["达标率", result.get("compliance")],
               ["参会率", result.get("attendance_rate")], ["支部得分", result.get("score")],
               ["预警", chinese(result.get("light"), "light")],
               ["未开展组织生活天数", result.get("silent_days")],
               ["最近一次会议", result.get("last_meeting_on")],
               ["计分规则版本", result.get("rules_version")]]
    rates = {"达标率", "参会率"}
    return [Sheet("组织生活达标情况", ["会议类型", "应达标", "已达标", "已开展", "达标率"], per_type,
                  {"达标率": PERCENT}),
            Sheet("未完成", slot, missed),
            Sheet("即将到期", [*slot, "截止日期"], due),
            Sheet("支部概况", ["项目", "内容"],
                  [[k, v] for k, v in summary if k not in rates] +
                  [[k, percent(v)] for k, v in summary if k in rates])]


@command("compliance")
def compliance(branch_id: str = typer.Argument(..., metavar="BRANCH", help="branch org id"),
               year: Optional[int] = YearOpt, as_of: Optional[str] = AsOfOpt,
               as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """A branch's compliance with the required meeting frequencies, and its light.

    Slots required and met and meetings held, per meeting type and overall; attendance rate,
    branch score, light (红灯/黄灯/绿灯); each missed slot and those due soon."""
    with rpc("scoring") as scoring:
        result = scoring.branch_compliance(branch_id, year, as_of)
    answer(result, as_json, show_compliance, xlsx, compliance_sheets)


# -- ranking ---------------------------------------------------------------------------------------
def show_ranking(result: dict) -> None:
    items = result.get("items") or []
    title = (f"{result['level']} ranking under {result['org_id']}, {result['year']} "
             f"({len(items)} of {result.get('total', len(items))})")
    if result["level"] == "member":
        columns = ["rank", Column("member_id", "member"), "name", Column("branch_id", "branch"),
                   "score", Column("grade", format=coded("grade")),
                   Column("recommendation", format=coded("recommendation"))]
    else:
        columns = ["rank", Column("branch_id", "branch"), "name",
                   Column("category", format=coded("category")), "score",
                   Column("compliance", format=percent), Column("light", format=light_text)]
    console.print(items_table(items, columns, title))


def ranking_sheets(result: dict) -> list[Sheet]:
    items = result.get("items") or []
    if result["level"] == "member":
        return [Sheet("排名", ["名次", "党员编号", "党员", "支部", "积分", "等次", "转正建议"],
                      [[i["rank"], i["member_id"], i.get("name"), i.get("branch_id"),
                        i.get("score"), chinese(i.get("grade"), "grade"),
                        chinese(i.get("recommendation"), "recommendation")] for i in items])]
    return [Sheet("排名", ["名次", "支部编号", "支部", "类别", "得分", "达标率", "预警"],
                  [[i["rank"], i["branch_id"], i.get("name"),
                    chinese(i.get("category"), "category"), i.get("score"),
                    i.get("compliance"), chinese(i.get("light"), "light")] for i in items],
                  {"达标率": PERCENT})]


@command("ranking")
def ranking(org_id: str = typer.Argument(..., metavar="ORG",
                                         help="the county or township (or any org) ranked"),
            level: Level = typer.Option(Level.branch, "--level",
                                        help="Rank branches (by branch score) or members "
                                             "(by points)."),
            limit: int = typer.Option(50, "--limit", min=1, help="Show the first N."),
            year: Optional[int] = YearOpt, as_json: bool = JsonOpt,
            xlsx: Optional[Path] = XlsxOpt):
    """Branches (by branch score) or members (by points), best first.

    Ties share a rank (1, 2, 2, 4)."""
    with rpc("scoring") as scoring:
        result = scoring.ranking(org_id, year, level.value, limit)
    answer(result, as_json, show_ranking, xlsx, ranking_sheets)


# -- unevenness ------------------------------------------------------------------------------------
def below_header(result: dict) -> str:
    return f"{result.get('threshold', 0.6):g}"


def show_unevenness(result: dict) -> None:
    rows = result.get("categories") or []
    console.print(items_table(
        rows, [Column("category", format=coded("category")), "branches",
               Column("mean", format=percent), Column("min", format=percent),
               Column("max", format=percent),
               Column("below_0_6", f"below {below_header(result)}")],
        f"compliance by branch category under {result['org_id']}, {result['year']} "
        f"(as of {result.get('as_of')})",
        row_style=lambda r: "red" if r.get("below_0_6") else None))


def unevenness_sheets(result: dict) -> list[Sheet]:
    below = f"低于{below_header(result)}"
    return [Sheet("不平衡情况", ["类别", "支部数", "平均达标率", "最低", "最高", below],
                  [[chinese(r["category"], "category"), r["branches"], r["mean"], r["min"],
                    r["max"], r["below_0_6"]] for r in result.get("categories") or []],
                  {"平均达标率": PERCENT, "最低": PERCENT, "最高": PERCENT})]


@command("unevenness")
def unevenness(org_id: str = typer.Argument(..., metavar="ORG",
                                            help="the county or township looked at"),
               year: Optional[int] = YearOpt, as_of: Optional[str] = AsOfOpt,
               as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """Compliance by branch category: where organization life is uneven.

    Per category (村, 社区, 非公企业, ...): branches, mean, lowest and highest compliance, and
    how many branches are below the threshold."""
    with rpc("scoring") as scoring:
        result = scoring.unevenness(org_id, year, as_of)
    answer(result, as_json, show_unevenness, xlsx, unevenness_sheets)


# -- members at risk -------------------------------------------------------------------------------
def missed_months(item: dict) -> str:
    return ", ".join(m["month"] for m in item.get("months_list") or [])


def risk_style(item: dict) -> Optional[str]:
    return RISK_STYLES.get(item.get("level"))


def missed_meeting_rows(items: list[dict]) -> list[dict]:
    return [{"member_id": item["member_id"], "name": item.get("name"), "month": month["month"],
             **meeting}
            for item in items for month in item.get("months_list") or []
            for meeting in (month.get("meetings") or [{}])]


def show_at_risk(result: dict) -> None:
    items = result.get("items") or []
    console.print(items_table(
        [{**item, "missed months": missed_months(item)} for item in items],
        [Column("member_id", "member"), "name", Column("branch_id", "branch"),
         Column("months", "streak (months)"), Column("level", format=coded("risk_level")),
         "missed months"],
        f"members at risk under {result['org_id']} as of {result.get('as_of')} "
        f"({len(items)} of {result.get('total', len(items))})", row_style=risk_style))
    rows = missed_meeting_rows(items)
    if rows:
        console.print(items_table(
            rows, [Column("member_id", "member"), "name", "month",
                   Column("meeting_id", "meeting"), Column("type", format=coded("meeting_type")),
                   "date", Column("branch_id", "branch")], "meetings missed"))


def at_risk_sheets(result: dict) -> list[Sheet]:
    items = result.get("items") or []
    return [Sheet("预警党员", ["党员编号", "姓名", "支部", "连续未参加月数", "预警级别", "未参加月份"],
                  [[i["member_id"], i.get("name"), i.get("branch_id"), i.get("months"),
                    chinese(i.get("level"), "risk_level"),
                    "、".join(m["month"] for m in i.get("months_list") or [])] for i in items]),
            Sheet("未参加会议明细", ["党员编号", "姓名", "月份", "会议编号", "会议类型", "日期", "支部"],
                  [[r["member_id"], r.get("name"), r["month"], r.get("meeting_id"),
                    chinese(r.get("type"), "meeting_type"), r.get("date"), r.get("branch_id")]
                   for r in missed_meeting_rows(items)])]


@command("at-risk")
def at_risk(org_id: str = typer.Argument(..., metavar="ORG",
                                         help="the county, township or branch looked at"),
            as_of: Optional[str] = AsOfOpt,
            all_streaks: bool = typer.Option(False, "--all", help="also members whose streak "
                                             "has no level yet (1-2 missed months)"),
            as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """Members missing organization life month after month.

    Party Constitution Art. 9: the streak of missed months, its level, and per missed month
    the meetings missed. The system flags; people decide."""
    with rpc("scoring") as scoring:
        result = scoring.members_at_risk(org_id, as_of, all_streaks=all_streaks)
    answer(result, as_json, show_at_risk, xlsx, at_risk_sheets)


# -- alerts ----------------------------------------------------------------------------------------
def slot_text(data: dict) -> str:
    group = f", group {data['group_id']}" if data.get("group_id") else ""
    return f"{coded('meeting_type')(data.get('type'))} for {data.get('period')}{group}"


def alert_says(alert: dict) -> str:
    """What an alert says, in a line."""
    data = alert.get("data") or {}
    kind = alert.get("kind")
    if kind == "branch_overdue":
        return f"{slot_text(data)} not held (overdue)"
    if kind == "branch_due_soon":
        return f"{slot_text(data)} not held yet, due {data.get('due_on')}"
    if kind == "branch_silent":
        last = data.get("last_meeting_at")
        return (f"no meeting for {data.get('days')} days (last meeting "
                f"{last or 'none since registration'})")
    if kind == "member_at_risk":
        months = ", ".join(m["month"] for m in data.get("months_list") or [])
        return (f"missed {data.get('months')} months in a row"
                + (f" ({months})" if months else "")
                + f": {coded('risk_level')(data.get('level'))}")
    return text(data)


def alert_chinese(alert: dict) -> str:
    data = alert.get("data") or {}
    kind = alert.get("kind")
    if kind == "branch_overdue":
        group = f"（党小组 {data['group_id']}）" if data.get("group_id") else ""
        return (f"{period_zh(data.get('period'))}{chinese(data.get('type'), 'meeting_type')}"
                f"{group}逾期未开展")
    if kind == "branch_due_soon":
        group = f"（党小组 {data['group_id']}）" if data.get("group_id") else ""
        return (f"{period_zh(data.get('period'))}{chinese(data.get('type'), 'meeting_type')}"
                f"{group}尚未开展，{data.get('due_on')}到期")
    if kind == "branch_silent":
        last = data.get("last_meeting_at")
        return (f"已连续{data.get('days')}天未开展组织生活（最近一次会议："
                f"{last or '登记以来无'}）")
    if kind == "member_at_risk":
        months = "、".join(m["month"] for m in data.get("months_list") or [])
        return (f"连续{data.get('months')}个月未参加组织生活"
                + (f"（{months}）" if months else "")
                + f"，预警级别：{chinese(data.get('level'), 'risk_level')}")
    return text(data)


def alert_style(alert: dict) -> Optional[str]:
    if alert.get("kind") == "member_at_risk":
        return RISK_STYLES.get((alert.get("data") or {}).get("level"))
    return "red" if alert.get("kind") == "branch_silent" else None


def kind_text(kind: Optional[str]) -> str:
    return f"{kind} {ALERT_NAMES[kind]}" if kind in ALERT_NAMES else text(kind)


def show_alerts(page: dict) -> None:
    items = page.get("items") or []
    console.print(items_table(
        [{**a, "says": alert_says(a)} for a in items],
        [Column("raised_at", "raised", format=county_time), Column("kind", format=kind_text),
         Column("branch_id", "branch"), Column("member_id", "member"), "says"],
        f"alerts, newest first ({len(items)} of {page.get('total', len(items))})",
        row_style=alert_style))


def alerts_sheets(page: dict) -> list[Sheet]:
    return [Sheet("预警提醒", ["提醒时间", "类型", "支部", "党员", "内容"],
                  [[county_time(a.get("raised_at")), ALERT_NAMES.get(a["kind"], a["kind"]),
                    a.get("branch_id"), a.get("member_id"), alert_chinese(a)]
                   for a in page.get("items") or []])]


@command("alerts")
def alerts(org_id: str = typer.Argument(..., metavar="ORG",
                                        help="the county, township or branch looked at"),
           kind: Optional[AlertKind] = typer.Option(None, "--kind",
                                                    help="Only alerts of this kind."),
           limit: int = typer.Option(50, "--limit", min=1, help="Show at most N."),
           offset: int = typer.Option(0, "--offset", min=0, help="Skip the first N."),
           as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """Alerts raised under an organization, newest first.

    Silent branches (days since the last meeting), overdue slots (type and period), members
    at risk (months and level)."""
    filters = {"org_id": org_id, "limit": limit, "offset": offset}
    if kind is not None:
        filters["kind"] = kind.value
    with rpc("scoring") as scoring:
        page = scoring.list_alerts(filters)
    answer(page, as_json, show_alerts, xlsx, alerts_sheets)


# -- recalculation ---------------------------------------------------------------------------------
@command("recalculate")
def recalculate(year: int = typer.Argument(..., metavar="YEAR", help="the year rebuilt"),
                as_json: bool = JsonOpt):
    """Rebuild a year's scores and branch figures (after the rules file changed).

    From scoring's own copy of meetings and members; county admins only."""
    with console.status(f"recalculating {year} ..."), rpc("scoring", timeout=1800) as scoring:
        result = scoring.recalculate(year)
    if as_json:
        return print_json(result)
    show_record(result, f"recalculated {year}")
