"""`orglife meeting schedule|log|amend|cancel|show|list`: one per meetings RPC (SPEC §4).

A meeting is logged from flags, from a record file (.yaml/.yml/.json with SPEC field names) or
from a sign-in sheet (签到表, .xlsx: the sheet gives the attendance, the flags the meeting).
Flags override the file; attendance flags (--present/--remote/--leave/--absent) change the
entries of the members they name and add the others.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from orglife.cli.common import (
    AT_HELP, Column, JsonOpt, coded, console, county_time, err_console, fail, given, items_table,
    print_json, rpc, show_items, show_record, yes_no,
)

app = typer.Typer(name="meeting", no_args_is_help=True,
                  help="Meetings: schedule, log (with attendance), amend, cancel, list.")

ATTENDANCE_FLAGS = ("present", "remote", "leave", "absent")
_ATTENDANCE_KEY = re.compile(r"^attendance\.(\d+)\.(.+)$")


# -- attendance from flags and files -----------------------------------------------------------
def member_ids(values: list[str]) -> list[str]:
    """`--present m1,m2 --present m3` → [m1, m2, m3]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def flag_attendance(present: list[str], remote: list[str], leave: list[str],
                    absent: list[str]) -> list[tuple[dict, str]]:
    """Entries named by the attendance flags, each with the flag it came from."""
    out: list[tuple[dict, str]] = []
    flagged: dict[str, str] = {}
    for flag, values in zip(ATTENDANCE_FLAGS, (present, remote, leave, absent)):
        for member_id in member_ids(values):
            if member_id in flagged:
                fail(f"member {member_id} is given twice (--{flagged[member_id]} and "
                     f"--{flag})", 2)
            flagged[member_id] = flag
            entry = {"member_id": member_id, "status": "present" if flag == "remote" else flag}
            if flag == "remote":
                entry["remote"] = True
            out.append((entry, f"--{flag}"))
    return out


def merge_attendance(base: list, labels: list[Optional[str]],
                     flagged: list[tuple[dict, str]]) -> tuple[list, list[Optional[str]]]:
    """The base list with each flagged member's entry replaced in place, new members added."""
    entries, where = list(base), list(labels)
    position = {e.get("member_id"): i for i, e in enumerate(entries) if isinstance(e, dict)}
    for entry, label in flagged:
        index = position.get(entry["member_id"])
        if index is None:
            position[entry["member_id"]] = len(entries)
            entries.append(entry)
            where.append(label)
        else:
            entries[index], where[index] = entry, label
    return entries, where


def read_file(path: Path) -> tuple[dict, list[Optional[str]], list[Optional[str]]]:
    """A record or sign-in sheet → (record, label of each attendance entry, names)."""
    from orglife.signin import SHEET_SUFFIXES, MeetingFileError, read_meeting_record, read_signin
    try:
        if path.suffix.lower() in SHEET_SUFFIXES:
            sheet = read_signin(path)
            if sheet.unsigned:
                lines = ", ".join(str(line) for line, _, _ in sheet.unsigned)
                word = "line" if len(sheet.unsigned) == 1 else "lines"
                err_console.print(f"[yellow]no attendance on sheet {word} {lines}:[/] "
                                  f"left out (an expected member not listed is absent)")
            return ({"attendance": sheet.attendance},
                    [sheet.label(i) for i in range(len(sheet.attendance))], list(sheet.names))
        record = read_meeting_record(path)
    except MeetingFileError as exc:
        fail(str(exc), 2)
    count = len(record["attendance"]) if isinstance(record.get("attendance"), list) else 0
    return record, [None] * count, [None] * count


def with_flags(record: dict, labels: list, names: list, flagged: list[tuple[dict, str]],
               base: Optional[list] = None) -> tuple[dict, list, list]:
    """Apply attendance flags to the record's list (or to `base` when the record has none)."""
    if not flagged:
        return record, labels, names
    listed = record.get("attendance", base if base is not None else [])
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        fail("the file's attendance is not a list of entries; attendance flags cannot "
             "change it", 2)
    if "attendance" not in record:
        labels = names = [None] * len(listed)
    entries, labels = merge_attendance(listed, labels, flagged)
    names = list(names) + [None] * (len(entries) - len(names))
    return {**record, "attendance": entries}, labels, names


def located(exc, labels: list[Optional[str]]):
    """The service's errors with each attendance entry's origin added to its field name."""
    from orglife.common.errors import ValidationError
    errors = {}
    for key, messages in exc.errors.items():
        match = _ATTENDANCE_KEY.match(key)
        index = int(match.group(1)) if match else None
        if index is not None and index < len(labels) and labels[index]:
            key = f"{key} ({labels[index]})"
        errors[key] = messages
    return ValidationError(errors)


def call(method, payload: dict, labels: list[Optional[str]]):
    from orglife.common.errors import ValidationError
    try:
        return method(payload)
    except ValidationError as exc:
        raise located(exc, labels) from None


# -- showing a meeting -------------------------------------------------------------------------
def quorum_text(meeting: dict) -> str:
    quorum = meeting.get("quorum") or {}
    if meeting.get("quorum_met") is None:
        return "" if meeting.get("status") == "scheduled" else "?"
    if meeting["quorum_met"]:
        return "yes" if quorum.get("rule") else "yes (no quorum rule)"
    return "[red]no[/]" + (f": {quorum['reason']}" if quorum.get("reason") else "")


MEETING_FORMATS = {"type": coded("meeting_type"), "held_at": county_time}
SUMMARY_COUNTS = ("expected", "present", "leave", "absent", "remote", "visiting")


def attendance_style(row: dict) -> Optional[str]:
    return {"absent": "red", "leave": "yellow"}.get(row["status"])


def show_meeting(meeting: dict, names: Optional[dict] = None) -> None:
    """The meeting, its attendance summary with the quorum, each attendee (with the names a
    sign-in sheet gave, when there was one), and its warnings in yellow (an attendee who was
    not a member on that date: kept, counting for nothing)."""
    show_record(meeting, f"meeting {meeting['meeting_id']}", MEETING_FORMATS)
    if meeting.get("status") == "scheduled" and not meeting.get("attendance"):
        if meeting.get("expected") is not None:
            console.print(f"expected: {len(meeting['expected'])} "
                          f"({', '.join(meeting['expected'])})")
        return
    summary = meeting.get("summary") or {}
    console.print(items_table(
        [{**{k: summary.get(k, 0) for k in SUMMARY_COUNTS}, "quorum met": quorum_text(meeting)}],
        [*SUMMARY_COUNTS, "quorum met"], "attendance summary"))
    names = names or {}
    rows = [{**row, "name": names.get(row["member_id"])} for row in meeting.get("attendance") or []]
    columns = [Column("member_id", "member"), *(["name"] if names else []),
               Column("status", format=coded("attendance")), "remote", "expected", "visiting"]
    console.print(items_table(rows, columns, f"attendance ({len(rows)})",
                              row_style=attendance_style))
    from rich.markup import escape
    for warning in meeting.get("warnings") or []:
        console.print(f"[yellow]warning: {escape(str(warning.get('field')))}: "
                      f"{escape(str(warning.get('message')))}[/]")


def answer(meeting: dict, as_json: bool, names: Optional[dict] = None) -> None:
    if as_json:
        print_json(meeting)
    else:
        show_meeting(meeting, names)


# -- meeting commands --------------------------------------------------------------------------
def meeting_fields(branch, meeting_type, at, topic, group, minutes, meeting_id) -> dict:
    return given(meeting_id=meeting_id, branch_id=branch, group_id=group,
                 type=meeting_type, held_at=at, topic=topic, minutes=minutes)


BranchOpt = typer.Option(None, "--branch", help="branch org id")
TypeOpt = typer.Option(None, "--type", help="branch_assembly, committee, group, lecture, "
                       "theme_day, org_life, democratic_review or study")
AtOpt = typer.Option(None, "--at", help=AT_HELP)
PresentOpt = typer.Option([], "--present", help="members present, M1,M2 (repeatable)")
RemoteOpt = typer.Option([], "--remote", help="members present online")
LeaveOpt = typer.Option([], "--leave", help="members on leave (excused)")
AbsentOpt = typer.Option([], "--absent", help="members absent (unexcused)")


@app.command("schedule")
def meeting_schedule(branch: str = typer.Option(..., "--branch", help="branch org id"),
                     meeting_type: str = typer.Option(..., "--type", help=TypeOpt.help),
                     at: str = typer.Option(..., "--at", help=AT_HELP),
                     topic: str = typer.Option(..., "--topic"),
                     group: Optional[str] = typer.Option(None, "--group",
                                                         help="group (for group meetings)"),
                     meeting_id: Optional[str] = typer.Option(None, "--id"),
                     minutes: Optional[str] = typer.Option(None, "--minutes"),
                     as_json: bool = JsonOpt):
    """Schedule a meeting (in the future); shows whom it expects."""
    payload = meeting_fields(branch, meeting_type, at, topic, group, minutes, meeting_id)
    with rpc("meetings") as meetings:
        meeting = meetings.schedule_meeting(payload)
    answer(meeting, as_json)


@app.command("log")
def meeting_log(path: Optional[Path] = typer.Argument(
                    None, exists=True, dir_okay=False, metavar="FILE",
                    help="a record (.yaml/.yml/.json) or a sign-in sheet 签到表 (.xlsx)"),
                branch: Optional[str] = BranchOpt, meeting_type: Optional[str] = TypeOpt,
                at: Optional[str] = AtOpt, topic: Optional[str] = typer.Option(None, "--topic"),
                group: Optional[str] = typer.Option(None, "--group"),
                minutes: Optional[str] = typer.Option(None, "--minutes"),
                meeting_id: Optional[str] = typer.Option(None, "--id"),
                present: list[str] = PresentOpt, remote: list[str] = RemoteOpt,
                leave: list[str] = LeaveOpt, absent: list[str] = AbsentOpt,
                as_json: bool = JsonOpt):
    """Log a held meeting with its attendance (expected members not listed are absent)."""
    record, labels, names = read_file(path) if path else ({}, [], [])
    record = {**record, **meeting_fields(branch, meeting_type, at, topic, group, minutes,
                                         meeting_id)}
    record, labels, names = with_flags(record, labels, names,
                                       flag_attendance(present, remote, leave, absent))
    record.setdefault("attendance", [])
    with rpc("meetings") as meetings:
        meeting = call(meetings.log_meeting, record, labels)
    answer(meeting, as_json, sheet_names(record, names))


def sheet_names(record: dict, names: list) -> dict:
    listed = record.get("attendance") if isinstance(record.get("attendance"), list) else []
    return {e.get("member_id"): n for e, n in zip(listed, names) if n and isinstance(e, dict)}


@app.command("amend")
def meeting_amend(meeting_id: str,
                  path: Optional[Path] = typer.Argument(
                      None, exists=True, dir_okay=False, metavar="FILE",
                      help="corrected record (.yaml/.yml/.json) or sign-in sheet (.xlsx)"),
                  revision: int = typer.Option(..., "--revision",
                                               help="the revision being amended (see `show`)"),
                  topic: Optional[str] = typer.Option(None, "--topic"),
                  minutes: Optional[str] = typer.Option(None, "--minutes"),
                  at: Optional[str] = AtOpt, meeting_type: Optional[str] = TypeOpt,
                  group: Optional[str] = typer.Option(None, "--group"),
                  present: list[str] = PresentOpt, remote: list[str] = RemoteOpt,
                  leave: list[str] = LeaveOpt, absent: list[str] = AbsentOpt,
                  as_json: bool = JsonOpt):
    """Correct a meeting (a file's attendance replaces the list; flags change those they name)."""
    record, labels, names = read_file(path) if path else ({}, [], [])
    if str(record.pop("meeting_id", meeting_id)) != meeting_id:
        fail(f"{path.name} is a record of another meeting", 2)
    branch_id = record.pop("branch_id", None)
    record.pop("revision", None)
    flagged = flag_attendance(present, remote, leave, absent)
    changes = {**record, **given(group_id=group, type=meeting_type, held_at=at,
                                 topic=topic, minutes=minutes)}
    with rpc("meetings") as meetings:
        current = None
        if branch_id is not None or (flagged and "attendance" not in changes):
            current = meetings.get_meeting(meeting_id)
        if branch_id is not None and branch_id != current["branch_id"]:
            fail(f"meeting {meeting_id} is in branch {current['branch_id']}, not "
                 f"{branch_id}: a meeting's branch cannot be amended (cancel it and log "
                 f"it again)", 2)
        base = None
        if current is not None:  # what the stored list says, as the service keeps it listed
            base = [{"member_id": r["member_id"], "status": r["status"], "remote": r["remote"]}
                    for r in current.get("attendance") or []
                    if r["status"] != "absent" or not r["expected"]]
        changes, labels, names = with_flags(changes, labels, names, flagged, base)
        meeting = call(meetings.amend_meeting,
                       {"meeting_id": meeting_id, "revision": revision, **changes}, labels)
    answer(meeting, as_json, sheet_names(changes, names))


@app.command("cancel")
def meeting_cancel(meeting_id: str, reason: str = typer.Option(..., "--reason"),
                   as_json: bool = JsonOpt):
    """Cancel a meeting (it then counts for nothing)."""
    with rpc("meetings") as meetings:
        meeting = meetings.cancel_meeting({"meeting_id": meeting_id, "reason": reason})
    answer(meeting, as_json)


@app.command("show")
def meeting_show(meeting_id: str, as_json: bool = JsonOpt):
    """A meeting with its quorum and complete attendance list."""
    with rpc("meetings") as meetings:
        meeting = meetings.get_meeting(meeting_id)
    answer(meeting, as_json)


@app.command("list")
def meeting_list(branch: Optional[str] = None, under: Optional[str] = None,
                 meeting_type: Optional[str] = TypeOpt,
                 from_: Optional[str] = typer.Option(None, "--from", help="YYYY-MM-DD"),
                 to: Optional[str] = typer.Option(None, "--to", help="YYYY-MM-DD"),
                 status: Optional[str] = typer.Option(None, "--status", help="scheduled or logged"),
                 cancelled: Optional[bool] = typer.Option(None, "--cancelled/--not-cancelled"),
                 limit: int = 50, offset: int = 0, as_json: bool = JsonOpt):
    """List meetings, newest first (filters and paging)."""
    filters = given(branch_id=branch, under=under, type=meeting_type, status=status,
                    cancelled=cancelled, to=to, limit=limit, offset=offset)
    if from_ is not None:
        filters["from"] = from_
    with rpc("meetings") as meetings:
        page = meetings.list_meetings(filters)
    if as_json:
        return print_json(page)
    rows = []
    for item in page["items"]:
        summary = item.get("summary") or {}
        rows.append({**item, "present/expected": (f"{summary.get('present', 0)}/"
                                                  f"{summary.get('expected', 0)}")})
    show_items({"items": rows, "total": page["total"]},
               ["meeting_id", Column("held_at", format=county_time), "branch_id",
                Column("type", format=MEETING_FORMATS["type"]), "topic", "status", "revision",
                "present/expected", Column("quorum_met", format=yes_no), "cancelled"],
               "meetings")
