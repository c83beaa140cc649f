"""`orglife notifications [resend|summary]` and `orglife preferences`: what the notifications
service sent, to whom, how and with what outcome; an admin's resend; members' channels and
quiet hours (SPEC §4).

`notifications` alone lists (its options filter the list); `notifications resend ID` and
`notifications summary` are its subcommands. Tables for people (codes with their Chinese names,
instants in county time), `--json` for scripts (the service's answer as it is), `--xlsx FILE`
for the office's files (Chinese headers).
"""
from __future__ import annotations

import inspect
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, Sheet, XlsxOpt, chinese, coded, console, county_time, err_console,
    items_table, print_json, rpc, show_record, text, write_xlsx,
)
from orglife.common.vocabulary import LABELS, label

app = typer.Typer()  # nameless: `notifications` (a group) and `preferences` at the top level

STATUS_STYLES = {"failed": "red", "unknown": "bold yellow", "withdrawn": "dim",
                 "delivered": "green"}
STATUS_ORDER = tuple(LABELS["notification_status"])  # pending, sending, delivered, ...
MEMBER_CHANNELS = ("email", "sms", "in_app")  # what a member may choose (robot is an org's)
UNKNOWN_LEGEND = ("unknown 结果不明: the sender stopped after handing the message to the channel "
                  "and before recording the answer, so it may have been delivered. It is not sent "
                  "again on its own: only an admin's `orglife notifications resend ID` sends it "
                  "again.")
UNKNOWN_LEGEND_CHINESE = "结果不明：可能已送达，系统不会自动重发；确需重发的，由管理员执行重发。"


def one_line_help(function) -> str:
    """A docstring as help, each paragraph on one line (help screens wrap it themselves)."""
    paragraphs = inspect.cleandoc(function.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def command(typer_app: typer.Typer, name: str):
    """`typer_app.command(name)`, helped by the function's docstring."""
    def register(function):
        return typer_app.command(name, help=one_line_help(function))(function)
    return register


def codes(domain: str, name: str) -> type[Enum]:
    """The codes of a vocabulary domain as an Enum Typer validates (a bad one: exit 2 with the
    allowed values)."""
    return Enum(name, [(code, code) for code in LABELS[domain]], type=str)


Kind = codes("notification_kind", "Kind")
Status = codes("notification_status", "Status")
Channel = codes("channel", "Channel")


# -- formatting ------------------------------------------------------------------------------------
def status_text(code: Optional[str]) -> str:
    """A status in its colour: failed red, unknown bold yellow, withdrawn dim, delivered green."""
    if not code:
        return ""
    shown = label(code, "notification_status")
    style = STATUS_STYLES.get(code)
    return f"[{style}]{shown}[/]" if style else shown


def channel_order(channels) -> str:
    """["sms", "in_app"] → `sms 短信 → in_app 站内`."""
    return " → ".join(label(c, "channel") for c in channels or [])


def channel_order_chinese(channels) -> str:
    return " → ".join(chinese(c, "channel") for c in channels or [])


NOTIFICATION_FORMATS = {
    "kind": coded("notification_kind"), "channel": coded("channel"), "status": status_text,
    "created_at": county_time, "not_before": county_time, "delivered_at": county_time,
    "next_attempt_at": county_time,
}


def save(path: Optional[Path], sheets) -> None:
    if path is None:
        return
    write_xlsx(path, sheets)
    err_console.print(f"wrote {path}")


def answer(result: dict, as_json: bool, show, xlsx: Optional[Path] = None, sheets=None) -> None:
    """Write the file (if asked), then print the tables or the JSON."""
    if xlsx is not None:
        save(xlsx, sheets(result))
    if as_json:
        print_json(result)
    else:
        show(result)


def legend_if_unknown(statuses) -> None:
    if "unknown" in set(statuses):
        console.print(f"[bold yellow]{UNKNOWN_LEGEND}[/]")


# -- the list --------------------------------------------------------------------------------------
def recipient_text(notification: dict) -> str:
    """"张三（m1）": the name the copy holds, with the id a later command takes."""
    ident, name = notification.get("recipient_id") or "", notification.get("recipient_name")
    return f"{name}（{ident}）" if name else ident


LIST_COLUMNS = [
    Column("notification_id", "id"),
    Column("created_at", "created", county_time),
    Column("kind", format=coded("notification_kind")),
    Column("recipient", "recipient"),
    Column("channel", format=coded("channel")),
    Column("status", format=status_text),
    "attempts",
    "subject",
]


def show_notifications(page: dict) -> None:
    items = [{**item, "recipient": recipient_text(item)} for item in page.get("items") or []]
    console.print(items_table(items, LIST_COLUMNS, f"notifications, newest first ({len(items)} "
                                                   f"of {page.get('total', len(items))})"))
    legend_if_unknown(item.get("status") for item in items)


def notifications_sheets(page: dict) -> list[Sheet]:
    items = page.get("items") or []
    rows = [[n["notification_id"], county_time(n.get("created_at")),
             chinese(n.get("kind"), "notification_kind"), recipient_text(n),
             chinese(n.get("channel"), "channel"), chinese(n.get("status"), "notification_status"),
             n.get("attempts"), n.get("subject"), county_time(n.get("delivered_at")),
             n.get("cause"), n.get("last_error")] for n in items]
    sheets = [Sheet("通知", ["通知编号", "创建时间", "类型", "接收人", "渠道", "状态", "尝试次数",
                           "标题", "送达时间", "事由", "最近错误"], rows)]
    if any(n.get("status") == "unknown" for n in items):
        sheets.append(Sheet("说明", ["说明"], [[UNKNOWN_LEGEND_CHINESE]]))
    return sheets


notifications = typer.Typer(name="notifications", invoke_without_command=True,
                            subcommand_metavar="[resend ID | summary]")
app.add_typer(notifications)


@notifications.callback(help=(
    "Notifications, newest first: created, kind, recipient, channel, status, attempts, "
    "subject.\n\nAlone it lists (its options filter the list); `resend ID` and `summary` are "
    "its subcommands. A notification `unknown` may have been delivered: only an admin's resend "
    "sends it again."))
def notifications_list(
        ctx: typer.Context,
        recipient: Optional[str] = typer.Option(None, "--recipient", metavar="ID",
                                                help="Only those to this member (or, for its "
                                                     "robot, organization)."),
        kind: Optional[Kind] = typer.Option(None, "--kind", help="Only this kind."),
        status: Optional[Status] = typer.Option(None, "--status", help="Only this status."),
        channel: Optional[Channel] = typer.Option(None, "--channel",
                                                  help="Only on this channel (the one in use "
                                                       "or last tried)."),
        org: Optional[str] = typer.Option(None, "--org", metavar="ORG",
                                          help="Only those about this organization's subtree."),
        cause: Optional[str] = typer.Option(None, "--cause", metavar="TEXT",
                                            help="Only those answering this cause (exactly)."),
        limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Show at most N."),
        offset: int = typer.Option(0, "--offset", min=0, help="Skip the first N."),
        as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    filters = {"limit": limit, "offset": offset}
    for key, value in (("recipient_id", recipient), ("org_id", org), ("cause", cause),
                       ("kind", kind), ("status", status), ("channel", channel)):
        if value is not None:
            filters[key] = value.value if isinstance(value, Enum) else value
    if ctx.invoked_subcommand is not None:
        # `notifications --status failed resend X`: a filter before a subcommand does nothing;
        # say so rather than ignore it.
        given = [param.opts[0] for param in ctx.command.params
                 if param.name in ctx.params and getattr(
                     ctx.get_parameter_source(param.name), "name", "") == "COMMANDLINE"]
        if given:
            raise typer.BadParameter(
                f"{', '.join(given)} filter(s) the list: list without a subcommand, or give "
                f"`{ctx.invoked_subcommand}` its own options after its name",
                param_hint="notifications")
        return
    with rpc("notifications") as service:
        page = service.list_notifications(filters)
    answer(page, as_json, show_notifications, xlsx, notifications_sheets)


# -- resend ----------------------------------------------------------------------------------------
def show_notification(record: dict) -> None:
    shown = {**record, "channels": channel_order(record.get("channels"))}
    show_record(shown, f"notification {record['notification_id']}",
                {**NOTIFICATION_FORMATS, "channels": text})
    legend_if_unknown([record.get("status")])


@command(notifications, "resend")
def resend(notification_id: str = typer.Argument(..., metavar="ID",
                                                 help="the notification (its id in the list)"),
           as_json: bool = JsonOpt):
    """Send a failed or unknown notification again, from its first channel (admins only).

    Never automatic: an `unknown` one may have been delivered already. A delivered, pending or
    withdrawn one is refused."""
    with rpc("notifications") as service:
        record = service.resend(notification_id)
    if as_json:
        return print_json(record)
    show_notification(record)
    console.print(f"{record['notification_id']} is pending again: it goes out on "
                  f"{label(record['channel'], 'channel')} at the next send")


# -- summary ---------------------------------------------------------------------------------------
def pivot(result: dict) -> tuple[list[str], list[dict]]:
    """(the statuses present, in their order; a row per kind and channel with a count per
    status and the total)."""
    items = result.get("items") or []
    statuses = [s for s in STATUS_ORDER if any(i["status"] == s for i in items)]
    statuses += sorted({i["status"] for i in items} - set(statuses))
    rows: dict[tuple, dict] = {}
    for item in items:
        row = rows.setdefault((item["kind"], item["channel"]),
                              {"kind": item["kind"], "channel": item["channel"], "total": 0})
        row[item["status"]] = row.get(item["status"], 0) + item["count"]
        row["total"] += item["count"]
    kinds = list(LABELS["notification_kind"])
    order = sorted(rows, key=lambda key: (kinds.index(key[0]) if key[0] in kinds else len(kinds),
                                          key[0], key[1]))
    return statuses, [rows[key] for key in order]


def count_cell(status: str):
    style = STATUS_STYLES.get(status) if status in ("failed", "unknown") else None

    def show(value) -> str:
        if not value:
            return ""
        return f"[{style}]{value}[/]" if style else str(value)
    return show


def show_summary(result: dict, org_id: Optional[str] = None) -> None:
    statuses, rows = pivot(result)
    totals = {"kind": "total 合计", "channel": "", "total": sum(r["total"] for r in rows)}
    for status in statuses:
        totals[status] = sum(r.get(status, 0) for r in rows)
    columns = [Column("kind", format=lambda k: k if k == "total 合计"
                      else coded("notification_kind")(k)),
               Column("channel", format=coded("channel"))]
    columns += [Column(s, label(s, "notification_status"), count_cell(s)) for s in statuses]
    columns.append(Column("total", "total 合计"))
    scope = f" under {org_id}" if org_id else ""
    console.print(items_table(rows + ([totals] if rows else []), columns,
                              f"notifications by kind, channel and status{scope}"))
    legend_if_unknown(statuses)


def summary_sheets(result: dict) -> list[Sheet]:
    statuses, rows = pivot(result)
    return [Sheet("通知统计", ["类型", "渠道", *(chinese(s, "notification_status") for s in statuses),
                           "合计"],
                  [[chinese(r["kind"], "notification_kind"), chinese(r["channel"], "channel"),
                    *(r.get(s, 0) for s in statuses), r["total"]] for r in rows])]


@command(notifications, "summary")
def summary(org: Optional[str] = typer.Option(None, "--org", metavar="ORG",
                                              help="Only those about this organization's "
                                                   "subtree."),
            as_json: bool = JsonOpt, xlsx: Optional[Path] = XlsxOpt):
    """How many notifications there are, by kind, channel and status.

    A row per kind and channel, a column per status (failed and unknown ones stand out)."""
    with rpc("notifications") as service:
        result = service.notification_summary(org)
    answer(result, as_json, lambda shown: show_summary(shown, org), xlsx, summary_sheets)


# -- preferences -----------------------------------------------------------------------------------
def check_channels(value: Optional[str]) -> Optional[list[str]]:
    """`sms,email` → ["sms", "email"]; a name that is no member channel is a usage error (the
    service checks the rest: repeats, how many)."""
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise typer.BadParameter("name at least one channel, e.g. sms,email",
                                 param_hint="--channels")
    wrong = [name for name in names if name not in MEMBER_CHANNELS]
    if wrong:
        raise typer.BadParameter(f"{', '.join(map(repr, wrong))}: not a member's channel "
                                 f"(choose from {', '.join(MEMBER_CHANNELS)})",
                                 param_hint="--channels")
    return names


def show_preferences(result: dict) -> None:
    own = result.get("channels")
    show_record({"member_id": result["member_id"],
                 "channels": channel_order(own) if own else "default (email, sms, in_app as "
                                                            "known)",
                 "quiet_hours": result.get("quiet_hours") or "none",
                 "effective order": channel_order(result.get("effective_channels"))},
                f"preferences of {result['member_id']}")


@command(app, "preferences")
def preferences(member_id: str = typer.Argument(..., metavar="MEMBER", help="the member"),
                channels: Optional[str] = typer.Option(
                    None, "--channels", metavar="LIST",
                    help="Channels in the order to try, comma separated, from email, sms, "
                         "in_app (e.g. sms,email)."),
                quiet: Optional[str] = typer.Option(
                    None, "--quiet", metavar="HH:MM-HH:MM",
                    help="Quiet hours (county time), e.g. 22:00-07:00: nothing but urgent "
                         "notices is sent then."),
                no_quiet: bool = typer.Option(False, "--no-quiet",
                                              help="No quiet hours at all for this member."),
                as_json: bool = JsonOpt):
    """Set a member's notification channels and quiet hours; prints the order now in effect.

    Notifications not tried yet follow the new order. Give --channels, --quiet or --no-quiet
    (not --quiet with --no-quiet)."""
    names = check_channels(channels)
    if quiet is not None and no_quiet:
        raise typer.BadParameter("give one of them, not both", param_hint="--quiet / --no-quiet")
    if names is None and quiet is None and not no_quiet:
        raise typer.BadParameter("nothing to change: give --channels, --quiet or --no-quiet",
                                 param_hint="preferences")
    change: dict = {"member_id": member_id}
    if names is not None:
        change["channels"] = names
    if quiet is not None or no_quiet:
        change["quiet_hours"] = None if no_quiet else quiet
    with rpc("notifications") as service:
        result = service.set_preferences(change)
    if as_json:
        return print_json(result)
    show_preferences(result)
