"""`orglife meeting|activity|intake`: file and sign-in sheet parsing, and the CLI end to end
(a subprocess against a MeetingsService container on the real broker)."""
import json
import os
import subprocess
import sys

import pytest

from orglife.common.auth import mint_token
from orglife.common.envelope import Envelope
from orglife.signin import (
    MeetingFileError, read_meeting_record, read_signin, read_signin_sheet, signin_from_lines,
)
from tests.conftest import REPO, SECRET, migrated_sqlite, publish_raw, service_config, wait_for
from tests.meetings.conftest import village_branch_events


def write_sheet(path, rows):
    import openpyxl
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "签到表"
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


SHEET = [
    ["石桥村党支部党员大会签到表"],
    [],
    ["序号", "党员编号", "姓名", "出席情况", "备注"],
    [1, "m1", "张伟", "出席", None],
    [2, "m2", "王芳", " 到会 ", None],
    [3, "m3", "李娜", "线上", "在外务工"],
    [4, "m4", "刘洋", "请假", "住院"],
    [5, "m5", "陈静", "缺席", None],
    [6, "m6", "杨磊", None, None],
    [7, "n1", "赵敏", "远程", "流动党员"],
    [None, None, None, None, None],
]


# -- parsing, no broker ------------------------------------------------------------------------
def test_a_signin_sheet_gives_the_attendance_list(tmp_path):
    path = write_sheet(tmp_path / "签到表.xlsx", SHEET)
    assert read_signin_sheet(path) == [
        {"member_id": "m1", "status": "present"},
        {"member_id": "m2", "status": "present"},
        {"member_id": "m3", "status": "present", "remote": True},
        {"member_id": "m4", "status": "leave"},
        {"member_id": "m5", "status": "absent"},
        {"member_id": "n1", "status": "present", "remote": True},
    ]
    sheet = read_signin(path)
    assert sheet.lines == [4, 5, 6, 7, 8, 10]
    assert sheet.names[2] == "李娜" and sheet.label(2) == "sheet line 6, 李娜"
    assert sheet.unsigned == [(9, "m6", "杨磊")]


def test_sheet_headers_values_and_ids_are_normalised():
    sheet = signin_from_lines([
        (1, ("编号", "姓名", "状态", "参会方式")),
        (2, (1001.0, "张伟", "PRESENT", "线上")),
        (3, (1002, None, "leave", "现场")),
        (4, ("1003", None, "迟到", None)),          # unknown word: passed on for the service
        (5, (None, "无编号", "出席", None)),         # no id: passed on, the service names it
        (6, ("1004", None, "缺席", "线上")),         # remote absence: passed on as well
    ])
    assert sheet.attendance == [
        {"member_id": "1001", "status": "present", "remote": True},
        {"member_id": "1002", "status": "leave"},
        {"member_id": "1003", "status": "迟到"},
        {"member_id": "", "status": "present"},
        {"member_id": "1004", "status": "absent", "remote": True},
    ]
    assert sheet.lines == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("rows, text", [
    ([], "empty"),
    ([(1, ("姓名", "出席情况")), (2, ("张伟", "出席"))], "编号"),
    ([(1, ("党员编号", "姓名")), (2, ("m1", "张伟"))], "出席情况"),
])
def test_a_sheet_without_its_columns_is_refused(rows, text):
    with pytest.raises(MeetingFileError) as err:
        signin_from_lines(rows)
    assert text in str(err.value)


def test_only_xlsx_is_a_signin_sheet(tmp_path):
    (tmp_path / "sheet.csv").write_text("编号,出席情况\nm1,出席\n")
    with pytest.raises(MeetingFileError):
        read_signin(tmp_path / "sheet.csv")
    (tmp_path / "broken.xlsx").write_text("not a zip")
    with pytest.raises(MeetingFileError):
        read_signin(tmp_path / "broken.xlsx")


def test_yaml_and_json_records(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "meeting_id: 42\nbranch_id: b1\ntype: lecture\n"
        "held_at: 2026-11-10T19:30:00+08:00\ntopic: 党课\n"
        "attendance:\n  - {member_id: 1001, status: present, remote: true}\n"
        "  - {member_id: m2, status: leave}\n", encoding="utf-8")
    record = read_meeting_record(tmp_path / "m.yaml")
    assert record == {"meeting_id": "42", "branch_id": "b1", "type": "lecture",
                      "held_at": "2026-11-10T19:30:00+08:00", "topic": "党课",
                      "attendance": [{"member_id": "1001", "status": "present", "remote": True},
                                     {"member_id": "m2", "status": "leave"}]}
    (tmp_path / "naive.yml").write_text("held_at: 2026-11-10 19:30:00\n")
    assert read_meeting_record(tmp_path / "naive.yml") == {"held_at": "2026-11-10T19:30:00"}
    (tmp_path / "m.json").write_text(json.dumps({"topic": "x", "attendance": []}))
    assert read_meeting_record(tmp_path / "m.json") == {"topic": "x", "attendance": []}
    for name, text in [("list.yaml", "- a\n- b\n"), ("bad.json", "{"), ("bad.yaml", "a: [\n"),
                       ("m.txt", "topic: x\n")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(MeetingFileError):
            read_meeting_record(tmp_path / name)


# -- the CLI against the service ---------------------------------------------------------------
@pytest.fixture
def meetings_service(container_factory, vhost_uri, tmp_path):
    """A MeetingsService container on the test vhost, its copy of members seeded (b1, b2)."""
    from nameko.testing.services import entrypoint_hook
    from services.meetings.service import MeetingsService
    db_url = migrated_sqlite(tmp_path, "meetings")
    container = container_factory(MeetingsService,
                                  service_config("meetings", vhost_uri, db_url, tmp_path))
    container.start()
    for envelope in village_branch_events():
        with entrypoint_hook(container, "on_members_events") as handle:
            handle([envelope])
    return db_url


@pytest.fixture
def orglife(vhost_uri, tmp_path, meetings_service):
    """Run `python -m orglife ...` as a county admin; returns the CompletedProcess."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "ORGLIFE_AMQP_URI": vhost_uri, "ORGLIFE_HOME": str(home),
           "ORGLIFE_SECRET": SECRET, "ORGLIFE_TOKEN": mint_token(SECRET, "tester", "county_admin"),
           "ORGLIFE_TZ": "Asia/Shanghai",  # the services' default: tables show their time
           "COLUMNS": "250", "PYTHONWARNINGS": "ignore"}

    def run(*args, expect=0):
        done = subprocess.run([sys.executable, "-m", "orglife", *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
        return done

    def run_json(*args):
        return json.loads(run(*args, "--json").stdout)

    run.json = run_json
    return run


ASSEMBLY_YAML = """\
meeting_id: mt1
branch_id: b1
type: branch_assembly
held_at: 2026-11-10T19:30:00+08:00
topic: 学习党的二十届四中全会精神
minutes: 传达学习，讨论发展党员。
attendance:
  - {member_id: m1, status: present}
  - {member_id: m2, status: present}
  - {member_id: m3, status: present}
  - {member_id: m4, status: present}
  - {member_id: m5, status: present, remote: true}
  - {member_id: m6, status: leave}
  - {member_id: n1, status: present, remote: true}
"""


@pytest.mark.integration
def test_log_from_a_yaml_record(orglife, tmp_path):
    path = tmp_path / "assembly.yaml"
    path.write_text(ASSEMBLY_YAML, encoding="utf-8")
    meeting = orglife.json("meeting", "log", path)
    assert meeting["meeting_id"] == "mt1" and meeting["held_at"] == "2026-11-10T11:30:00+00:00"
    assert meeting["summary"] == {"expected": 11, "present": 6, "leave": 1, "absent": 5,
                                  "remote": 2, "visiting": 1}
    assert meeting["quorum_met"] is True
    rows = {r["member_id"]: r for r in meeting["attendance"]}
    assert rows["m7"]["status"] == "absent" and rows["n1"]["visiting"] is True
    # The same report again is the stored meeting; shown as tables this time.
    out = orglife("meeting", "log", path).stdout
    assert "attendance summary" in out and "quorum met" in out
    assert "branch_assembly 支部党员大会" in out and "m7" in out and "absent 缺席" in out
    assert "2026-11-10 19:30" in out  # county time, as the office gave it, not 11:30 UTC
    # Flags override the file: another meeting from the same record, m7 on leave, m6 present.
    other = orglife.json("meeting", "log", path, "--id", "mt1b", "--at", "2026-11-11T19:30+08:00",
                         "--leave", "m7", "--present", "m6")
    rows = {r["member_id"]: r for r in other["attendance"]}
    assert other["meeting_id"] == "mt1b" and other["held_at"].startswith("2026-11-11")
    assert rows["m7"]["status"] == "leave" and rows["m6"]["status"] == "present"
    assert other["summary"]["present"] == 7
    # An instant without an offset is county time, and the table shows it so; JSON stays UTC.
    out = orglife("meeting", "log", "--id", "mt1c", "--branch", "b1", "--type",
                  "branch_assembly", "--at", "2026-11-10T19:30", "--topic", "党员大会",
                  "--present", "m1", "--leave", "m2").stdout
    assert "2026-11-10 19:30" in out and "11:30" not in out
    assert "branch_assembly 支部党员大会" in out
    assert "present 出席" in out and "leave 请假" in out and "absent 缺席" in out
    assert orglife.json("meeting", "show", "mt1c")["held_at"] == "2026-11-10T11:30:00+00:00"


@pytest.mark.integration
def test_log_from_an_xlsx_signin_sheet(orglife, tmp_path):
    path = write_sheet(tmp_path / "签到表.xlsx", SHEET)
    done = orglife("meeting", "log", path, "--branch", "b1", "--type", "branch_assembly",
                   "--at", "2026-11-12T19:30:00+08:00", "--topic", "学习新修订的条例",
                   "--id", "mt-sheet")
    assert "3 of 9 voting members present; 5 needed" in done.stdout  # quorum missed, reason shown
    assert "李娜" in done.stdout  # names from the sheet beside the ids
    assert "line 9" in done.stderr  # m6 did not sign
    meeting = orglife.json("meeting", "show", "mt-sheet")
    rows = {r["member_id"]: r for r in meeting["attendance"]}
    assert meeting["quorum_met"] is False and meeting["topic"] == "学习新修订的条例"
    assert rows["m3"] == {"member_id": "m3", "status": "present", "remote": True,
                          "expected": True, "visiting": False}
    assert rows["m4"]["status"] == "leave" and rows["m5"]["status"] == "absent"
    assert rows["m6"]["status"] == "absent" and rows["n1"]["visiting"] is True
    assert meeting["summary"] == {"expected": 11, "present": 4, "leave": 1, "absent": 7,
                                  "remote": 2, "visiting": 1}


@pytest.mark.integration
def test_bad_records_name_the_field_and_store_nothing(orglife, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(ASSEMBLY_YAML.replace("type: branch_assembly", "type: party")
                    .replace("{member_id: m6, status: leave}", "{member_id: m6, status: sleeping}"),
                    encoding="utf-8")
    done = orglife("meeting", "log", path, expect=1)
    assert "type" in done.stderr and "attendance.5.status" in done.stderr
    sheet = write_sheet(tmp_path / "ghost.xlsx", [["编号", "姓名", "出席情况"],
                                                  ["m1", "张伟", "出席"], ["g9", "无名", "出席"]])
    done = orglife("meeting", "log", sheet, "--branch", "b1", "--type", "lecture",
                   "--at", "2026-11-12T19:30:00+08:00", "--topic", "党课", expect=1)
    assert "attendance.1.member_id (sheet line 3, 无名)" in done.stderr
    assert "unknown member 'g9'" in done.stderr
    future = orglife("meeting", "log", "--branch", "b1", "--type", "lecture", "--topic", "党课",
                     "--at", "2026-12-01T09:00:00+08:00", "--present", "m1", expect=1)
    assert "held_at" in future.stderr
    assert orglife.json("meeting", "list")["total"] == 0
    # usage errors: exit 2, nothing sent
    (tmp_path / "notes.txt").write_text("x")
    orglife("meeting", "log", tmp_path / "notes.txt", expect=2)
    done = orglife("meeting", "log", "--present", "m1,m2", "--leave", "m2", expect=2)
    assert "m2" in done.stderr


@pytest.mark.integration
def test_amend_patches_attendance_and_refuses_a_stale_revision(orglife, tmp_path):
    logged = orglife.json("meeting", "log", "--id", "mt-l", "--branch", "b1", "--type", "lecture",
                          "--at", "2026-11-05T15:00+08:00", "--topic", "党课",
                          "--present", "m1,m2", "--remote", "n1")
    assert logged["revision"] == 1 and logged["summary"]["present"] == 3
    amended = orglife.json("meeting", "amend", "mt-l", "--revision", "1", "--leave", "m3",
                           "--topic", "党课：党章学习")
    rows = {r["member_id"]: r for r in amended["attendance"]}
    assert amended["revision"] == 2 and amended["topic"] == "党课：党章学习"
    assert rows["m3"]["status"] == "leave"
    assert rows["m1"]["status"] == "present" and rows["n1"]["remote"] is True  # kept
    done = orglife("meeting", "amend", "mt-l", "--revision", "1", "--topic", "x", expect=1)
    assert "stale revision" in done.stderr
    # a corrected sign-in sheet replaces the list
    sheet = write_sheet(tmp_path / "fix.xlsx", [["党员编号", "出席情况"], ["m1", "出席"],
                                                ["m2", "出席"], ["m3", "出席"]])
    fixed = orglife.json("meeting", "amend", "mt-l", sheet, "--revision", "2")
    rows = {r["member_id"]: r for r in fixed["attendance"]}
    assert fixed["revision"] == 3 and "n1" not in rows and rows["m3"]["status"] == "present"
    orglife("meeting", "amend", "mt-l", "--revision", "3", expect=1)  # nothing to amend


@pytest.mark.integration
def test_schedule_cancel_and_list(orglife):
    scheduled = orglife.json("meeting", "schedule", "--branch", "b1", "--type", "theme_day",
                             "--at", "2026-12-01T09:00:00+08:00", "--topic", "主题党日",
                             "--id", "mt-s")
    assert scheduled["status"] == "scheduled" and len(scheduled["expected"]) == 11
    orglife("meeting", "schedule", "--branch", "b1", "--type", "theme_day", "--topic", "过去",
            "--at", "2026-11-01T09:00:00+08:00", expect=1)
    for meeting_id, day in (("mt-a", "2026-11-02"), ("mt-b", "2026-10-15")):
        orglife("meeting", "log", "--id", meeting_id, "--branch", "b1", "--type", "lecture",
                "--at", f"{day}T15:00+08:00", "--topic", "党课", "--present", "m1")
    cancelled = orglife.json("meeting", "cancel", "mt-b", "--reason", "重复录入")
    assert cancelled["cancelled"] is True and cancelled["cancel_reason"] == "重复录入"
    orglife("meeting", "cancel", "nope", "--reason", "x", expect=1)
    page = orglife.json("meeting", "list")
    assert page["total"] == 3
    assert [m["meeting_id"] for m in page["items"]] == ["mt-s", "mt-a", "mt-b"]  # newest first
    assert [m["meeting_id"] for m in orglife.json("meeting", "list", "--cancelled")["items"]] == ["mt-b"]
    assert orglife.json("meeting", "list", "--not-cancelled", "--type", "lecture")["total"] == 1
    assert orglife.json("meeting", "list", "--status", "scheduled")["items"][0]["meeting_id"] == "mt-s"
    window = orglife.json("meeting", "list", "--from", "2026-11-01", "--to", "2026-11-30")
    assert [m["meeting_id"] for m in window["items"]] == ["mt-a"]
    assert orglife.json("meeting", "list", "--limit", "1", "--offset", "1")["items"][0][
        "meeting_id"] == "mt-a"
    out = orglife("meeting", "list", "--branch", "b1").stdout
    assert "meetings (3 of 3)" in out and "mt-a" in out and "1/11" in out
    assert "2026-11-02 15:00" in out and "lecture 党课" in out and "theme_day 主题党日" in out
    orglife("meeting", "list", "--status", "held", expect=1)


@pytest.mark.integration
def test_activity_log(orglife):
    visit = orglife.json("activity", "log", "--member", "m1", "--kind", "household_visit",
                         "--at", "2026-11-12T15:00:00+08:00", "--household", "石桥村3组 李大爷家",
                         "--opinions", "希望修缮村道", "--id", "ac-1")
    assert visit["activity_id"] == "ac-1" and visit["branch_id"] == "b1"
    assert visit["household"] == "石桥村3组 李大爷家"
    out = orglife("activity", "log", "--member", "n1", "--kind", "volunteer",
                  "--at", "2026-11-13T09:00:00+08:00", "--note", "义务植树").stdout
    assert "activity ac-" in out and "b2" in out
    done = orglife("activity", "log", "--member", "m1", "--kind", "household_visit",
                   "--at", "2026-11-12T15:00:00+08:00", expect=1)
    assert "household" in done.stderr
    shown = orglife("activity", "show", "ac-1").stdout
    assert "household_visit 走访联系户" in shown and "2026-11-12 15:00" in shown
    listed = orglife("activity", "list", "--branch", "b1").stdout
    assert "activities (1 of 1)" in listed and "ac-1" in listed
    assert orglife.json("activity", "list", "--kind", "volunteer")["total"] == 1
    orglife("activity", "show", "ac-none", expect=1)


@pytest.mark.integration
def test_rejected_intake_is_listed_with_its_reasons(orglife, vhost_uri, meetings_service):
    from sqlalchemy import create_engine, text
    report = Envelope.new("intake", "meeting_reported", {
        "meeting_id": "hr-1", "branch_id": "b1", "type": "party", "topic": "外部系统上报",
        "held_at": "2026-11-10T19:30:00+08:00",
        "attendance": [{"member_id": "m1", "status": "present"}]})
    publish_raw(vhost_uri, "intake.events", "meeting_reported", report.to_json())
    engine = create_engine(meetings_service)

    def rejected():
        with engine.connect() as conn:
            return conn.execute(text("select count(*) from rejected_intake")).scalar() == 1
    wait_for(rejected, message="the report rejected")
    engine.dispose()
    page = orglife.json("intake", "rejected", "--type", "meeting_reported")
    assert page["total"] == 1
    [item] = page["items"]
    assert item["event_id"] == report.event_id and "type" in item["reasons"]
    assert orglife.json("intake", "rejected", "--type", "activity_reported")["total"] == 0
    out = orglife("intake", "rejected").stdout
    assert report.event_id in out and "meeting_reported" in out and "type: Must be one of" in out
    shown = orglife("intake", "show", report.event_id).stdout
    assert "rejected" in shown and "type: Must be one of" in shown
    assert orglife.json("intake", "show", report.event_id)["status"] == "rejected"
