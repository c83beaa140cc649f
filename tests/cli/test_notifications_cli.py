"""`orglife notifications [resend|summary]` and `orglife preferences` end to end: the CLI as a
subprocess against members, meetings, scoring and notifications containers on the real broker
(one fresh vhost for the module), e-mail and SMS through the real local endpoints
(orglife/devservers.py), fed through the real event flow.

The county: the small county; b1 has m1–m9, m9 its secretary. m1 has an e-mail address, m2 a
phone, m3 nothing (in-app only, so the secretary is told too). A branch assembly on
2026-11-19 with m1, m2 and m3 absent: a follow-up to each (m1 by e-mail, m2 by SMS, m3 in-app),
and the digest to the secretary (which asks to tell m3 in person). The services run on the fixed clock
(ORGLIFE_NOW), so the rules file copy has no grace before follow-ups and no pause between
retries. Then, as legitimate test setup, m1's follow-up is made `failed` and m3's `unknown`
directly in notifications' SQLite database (a crash between the channel and the record is
not something a test can time).
"""
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
import yaml

from orglife.common.auth import mint_token
from orglife.common.config import DEFAULT_RULES
from tests.conftest import REPO, SECRET, bearer, migrated_sqlite, service_config, unique_name, \
    wait_for
from tests.members.conftest import small_county
from tests.notifications.conftest import local_endpoints  # noqa: F401 (a session fixture)

NINE = [f"m{n}" for n in range(1, 10)]
ABSENT = ("m1", "m2", "m3")
HELD_AT = "2026-11-19T19:30:00+08:00"


# -- no broker: the layout and bad usage -----------------------------------------------------------
def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "orglife", *map(str, args)], cwd=REPO,
                          env=env or {**os.environ, "COLUMNS": "250"}, capture_output=True,
                          text=True, timeout=120)


def test_the_commands_are_listed_with_a_line_of_help():
    out = run_cli("--help").stdout
    assert "notifications  Notifications, newest first" in out
    assert "preferences    Set a member's notification channels and quiet hours" in out
    out = run_cli("notifications", "--help").stdout
    assert "resend " in out and "summary " in out and "--status" in out and "--xlsx" in out


@pytest.mark.parametrize("args, says", [
    (("notifications", "--kind", "reminder"), "meeting_reminder"),
    (("notifications", "--status", "lost"), "unknown"),
    (("notifications", "--channel", "fax"), "in_app"),
    (("notifications", "--limit", "0"), "--limit"),
    (("notifications", "--xlsx", "list.csv"), ".xlsx"),
    (("notifications", "--status", "failed", "resend", "nt-1"), "resend"),
    (("notifications", "resend"), "ID"),
    (("preferences", "m1"), "nothing to change"),
    (("preferences", "m1", "--quiet", "22:00-07:00", "--no-quiet"), "not both"),
    (("preferences", "m1", "--channels", "sms,emial"), "'emial'"),
    (("preferences", "m1", "--channels", ","), "at least one"),
])
def test_bad_usage_exits_2_before_any_call(args, says):
    # No broker and no token here: a usage error must come first.
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORGLIFE_")}
    env.update(COLUMNS="250", ORGLIFE_AMQP_URI="amqp://nobody:nothing@127.0.0.1:1/none",
               ORGLIFE_HOME=str(REPO / ".orglife-test" / "cli-no-home"))
    done = run_cli(*args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in " ".join(done.stderr.split()), done.stderr


# -- the county ------------------------------------------------------------------------------------
def set_status(db_path, recipient_id, kind, status, error):
    with sqlite3.connect(db_path, timeout=30) as db:
        changed = db.execute("UPDATE notification SET status = ?, last_error = ? "
                             "WHERE recipient_id = ? AND kind = ?",
                             (status, error, recipient_id, kind)).rowcount
    assert changed == 1
    db.close()


@pytest.fixture(scope="module")
def county(rabbit, local_endpoints, tmp_path_factory):  # noqa: F811
    """The four services on one vhost, b1's assembly logged with absentees and every
    notification it raised settled; then one made failed, one unknown."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ClusterRpcProxy
    from services.meetings.service import MeetingsService
    from services.members.service import MembersService
    from services.notifications.service import NotificationsService
    from services.scoring.service import ScoringService

    tmp = tmp_path_factory.mktemp("notifications-cli")
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["notifications"].update(absence_followup_delay_minutes=0, backoff_minutes=[0])
    rules_path = tmp / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    for recorder in (local_endpoints.sms, local_endpoints.robot):
        recorder.reset_failures()
    vhost = unique_name("vh")
    rabbit.create_vhost(vhost)
    uri = rabbit.amqp_uri.rstrip("/") + "/" + vhost
    own = "t" + uuid.uuid4().hex[:10]
    mail = {"m1": f"{own}-m1@example.cn", "m9": f"{own}-sec@example.cn"}
    containers = []
    try:
        for service, cls in (("members", MembersService), ("meetings", MeetingsService),
                             ("scoring", ScoringService),
                             ("notifications", NotificationsService)):
            extra = local_endpoints.config() if service == "notifications" else {}
            config = service_config(service, uri, migrated_sqlite(tmp, service), tmp,
                                    ORGLIFE_RULES=str(rules_path), **extra)
            containers.append(ServiceContainer(cls, config))
            containers[-1].start()
        with ClusterRpcProxy({"AMQP_URI": uri}, context_data={"authorization": bearer()},
                             timeout=30) as cluster:
            small_county(cluster.members)
            # the secretary first: once notifications knows all nine, it knows b1's secretary
            for n, member_id in [(9, "m9")] + list(enumerate(NINE[:8], 1)):
                cluster.members.register_member({
                    "member_id": member_id, "name": f"党员{n}", "branch_id": "b1",
                    "joined_on": "2000-01-01", "email": mail.get(member_id),
                    "phone": "13700137002" if member_id == "m2" else None})
                if member_id == "m9":
                    cluster.members.update_organization({"org_id": "b1", "secretary_id": "m9"})
            wait_for(lambda: cluster.notifications.health()["known_members"] == 9
                     and cluster.meetings.health()["known_members"] == 9,
                     message="copies of members")
            cluster.meetings.log_meeting({
                "meeting_id": "a1", "branch_id": "b1", "type": "branch_assembly",
                "held_at": HELD_AT, "topic": "学习贯彻全会精神",
                "attendance": [{"member_id": m, "status": "absent" if m in ABSENT
                                else "present"} for m in NINE]})

            def settled():
                items = cluster.notifications.list_notifications({"limit": 100})["items"]
                return len(items) == 4 and all(i["status"] == "delivered" for i in items)
            wait_for(settled, timeout=30, message="the follow-ups and the digest delivered")
        db_path = tmp / "notifications.db"
        set_status(db_path, "m1", "absence_followup", "failed",
                   "smtp: 550 mailbox unavailable")
        set_status(db_path, "m3", "absence_followup", "unknown",
                   "the sender stopped while sending; it may have been delivered")
        yield SimpleNamespace(uri=uri, tmp=tmp, mail=mail, endpoints=local_endpoints)
    finally:
        for container in containers:
            try:
                container.kill()
            except Exception:  # already dead
                pass
        rabbit.delete_vhost(vhost)


@pytest.fixture(scope="module")
def orglife(county):
    """Run `python -m orglife ...` as a county admin; `.json(...)` parses `--json`."""
    home = county.tmp / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORGLIFE_")}
    env.update(ORGLIFE_AMQP_URI=county.uri, ORGLIFE_HOME=str(home), ORGLIFE_SECRET=SECRET,
               ORGLIFE_TOKEN=mint_token(SECRET, "office", "county_admin"),
               ORGLIFE_TZ="Asia/Shanghai", COLUMNS="250", PYTHONWARNINGS="ignore")

    def run(*args, expect=0, token=None):
        local = env if token is None else {**env, "ORGLIFE_TOKEN": token}
        done = subprocess.run([sys.executable, "-m", "orglife", *map(str, args)], cwd=REPO,
                              env=local, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done

    def run_json(*args):
        return json.loads(run(*args, "--json").stdout)

    run.json = run_json
    return run


def table_rows(text, title):
    """The cells of each row of the Rich table titled `title` in `text`, stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if stripped.startswith("└"):
            break
        if stripped.startswith("│"):
            rows.append([cell.strip() for cell in stripped.strip("│").split("│")])
    return rows  # (the header line is drawn with ┃, not │)


def workbook(path):
    import openpyxl
    book = openpyxl.load_workbook(path)
    return {ws.title: [list(row) for row in ws.iter_rows(values_only=True)]
            for ws in book.worksheets}


def flat(text):
    return " ".join(text.split())


# -- the list --------------------------------------------------------------------------------------
@pytest.mark.integration
def test_the_list_newest_first_with_names_colours_and_the_legend(orglife, tmp_path):
    path = tmp_path / "通知.xlsx"
    done = orglife("notifications", "--xlsx", path)
    out = done.stdout
    rows = table_rows(out, "notifications, newest first (4 of 4)")
    assert len(rows) == 4
    header = [cell.strip() for cell in next(
        line for line in out.splitlines() if "recipient" in line).strip().strip("┃").split("┃")]
    assert header == ["id", "created", "kind", "recipient", "channel", "status", "attempts",
                      "subject"]
    by_recipient = {(row[3], row[2]): row for row in rows}
    m1 = by_recipient[("党员1（m1）", "absence_followup 缺席跟进")]  # named, with the id
    assert m1[1] == "2026-11-20 10:00" and m1[4] == "email 邮件" and m1[5] == "failed 失败"
    assert by_recipient[("党员2（m2）", "absence_followup 缺席跟进")][4:6] == ["sms 短信",
                                                                   "delivered 已送达"]
    assert by_recipient[("党员3（m3）", "absence_followup 缺席跟进")][4:6] == ["in_app 站内",
                                                                   "unknown 结果不明"]
    assert by_recipient[("党员9（m9）", "absence_digest 缺席汇总")][4] == "email 邮件"
    assert ("党员9（m9）", "absence_followup 缺席跟进") not in by_recipient  # m3: in the digest
    assert "缺席" in m1[7]
    legend = flat(out)
    assert "may have been delivered" in legend and "only an admin's" in legend
    assert "wrote" in done.stderr

    sheet = workbook(path)["通知"]
    assert sheet[0] == ["通知编号", "创建时间", "类型", "接收人", "渠道", "状态", "尝试次数",
                        "标题", "送达时间", "事由", "最近错误"]
    assert len(sheet) == 5
    failed = next(row for row in sheet[1:] if row[5] == "失败")
    assert failed[2:5] == ["缺席跟进", "党员1（m1）", "邮件"] and failed[10] == "smtp: 550 mailbox unavailable"
    assert {row[5] for row in sheet[1:]} == {"失败", "结果不明", "已送达"}
    assert "可能已送达" in workbook(path)["说明"][1][0]


@pytest.mark.integration
def test_the_list_filtered(orglife):
    failed = orglife.json("notifications", "--status", "failed")
    assert failed["total"] == 1
    [item] = failed["items"]
    assert (item["recipient_id"], item["recipient_name"], item["kind"], item["channel"]) == (
        "m1", "党员1", "absence_followup", "email")
    assert item["created_at"].startswith("2026-11-20T02:00")  # --json: as the service said

    m9 = orglife.json("notifications", "--recipient", "m9")
    assert sorted(i["kind"] for i in m9["items"]) == ["absence_digest"]  # no relay beside it
    digest = orglife.json("notifications", "--recipient", "m9", "--kind", "absence_digest")
    [only] = digest["items"]
    # the meeting's event caused the digest and the three follow-ups
    by_cause = orglife.json("notifications", "--cause", only["cause"])["items"]
    assert sorted(i["recipient_id"] for i in by_cause) == ["m1", "m2", "m3", "m9"]
    assert orglife.json("notifications", "--channel", "sms")["items"][0]["recipient_id"] == "m2"
    assert orglife.json("notifications", "--org", "b1")["total"] == 4
    assert orglife.json("notifications", "--org", "b2")["total"] == 0
    page = orglife.json("notifications", "--limit", "2", "--offset", "1")
    assert page["total"] == 4 and len(page["items"]) == 2

    out = orglife("notifications", "--status", "delivered", "--channel", "email").stdout
    rows = table_rows(out, "notifications, newest first (1 of 1)")
    assert sorted((r[2], r[3], r[5]) for r in rows) == [
        ("absence_digest 缺席汇总", "党员9（m9）", "delivered 已送达")]  # the digest
    assert "may have been delivered" not in flat(out)  # no unknown one shown: no legend
    out = orglife("notifications", "--kind", "meeting_reminder").stdout
    assert "(0 of 0)" in out
    done = orglife("notifications", "--org", "nowhere", expect=1)
    assert "NotFound" in done.stderr and "nowhere" in done.stderr


# -- summary ---------------------------------------------------------------------------------------
@pytest.mark.integration
def test_the_summary_by_kind_channel_and_status(orglife, tmp_path):
    path = tmp_path / "通知统计.xlsx"
    out = orglife("notifications", "summary", "--xlsx", path).stdout
    rows = table_rows(out, "notifications by kind, channel and status")
    header = [cell.strip() for cell in next(
        line for line in out.splitlines() if "kind" in line and "┃" in line)
        .strip().strip("┃").split("┃")]
    assert header == ["kind", "channel", "delivered 已送达", "failed 失败", "unknown 结果不明",
                      "total 合计"]
    cells = {(r[0], r[1]): r[2:] for r in rows}
    assert cells[("absence_followup 缺席跟进", "email 邮件")] == ["", "1", "", "1"]
    assert cells[("absence_followup 缺席跟进", "in_app 站内")] == ["", "", "1", "1"]
    assert cells[("absence_digest 缺席汇总", "email 邮件")] == ["1", "", "", "1"]
    assert cells[("total 合计", "")] == ["2", "1", "1", "4"]
    assert "may have been delivered" in flat(out)

    result = orglife.json("notifications", "summary", "--org", "b1")
    assert {"kind": "absence_followup", "channel": "in_app", "status": "unknown",
            "count": 1} in result["items"]
    assert sum(i["count"] for i in result["items"]) == 4
    assert orglife.json("notifications", "summary", "--org", "b2")["items"] == []
    sheet = workbook(path)["通知统计"]
    assert sheet[0] == ["类型", "渠道", "已送达", "失败", "结果不明", "合计"]
    assert ["缺席跟进", "邮件", 0, 1, 0, 1] in sheet


# -- preferences -----------------------------------------------------------------------------------
@pytest.mark.integration
def test_preferences_set_and_refused(orglife):
    out = orglife("preferences", "m2", "--channels", "in_app, sms", "--quiet",
                  "23:00-06:00").stdout
    record = {row[0]: row[1] for row in table_rows(out, "preferences of m2")}
    assert record["effective order"] == "in_app 站内 → sms 短信"
    assert record["quiet_hours"] == "23:00-06:00"
    result = orglife.json("preferences", "m2", "--no-quiet")
    assert result["quiet_hours"] is None and result["channels"] == ["in_app", "sms"]
    assert result["effective_channels"] == ["in_app", "sms"]
    # m4 has neither e-mail nor phone: whatever the order asked, in-app is what remains
    result = orglife.json("preferences", "m4", "--channels", "sms,email")
    assert result["effective_channels"] == ["in_app"]

    done = orglife("preferences", "m2", "--quiet", "25:00-07:00", expect=1)
    assert "quiet_hours" in done.stderr and "HH:MM-HH:MM" in done.stderr  # the service's word
    done = orglife("preferences", "m2", "--channels", "sms,sms", expect=1)
    assert "channels" in done.stderr and "twice" in done.stderr
    done = orglife("preferences", "ghost", "--channels", "sms", expect=1)
    assert "NotFound" in done.stderr and "ghost" in done.stderr
    secretary = mint_token(SECRET, "sec-b2", "branch_secretary", org_id="b2")
    done = orglife("preferences", "m2", "--no-quiet", expect=1, token=secretary)
    assert "Forbidden" in done.stderr


# -- resend ----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_resend_a_failed_one_and_refuse_a_delivered_one(orglife, county):
    [failed] = orglife.json("notifications", "--status", "failed")["items"]
    before = len([m for m in county.endpoints.mails() if m.to == county.mail["m1"]])
    out = orglife("notifications", "resend", failed["notification_id"]).stdout
    title = f"notification {failed['notification_id']}"
    record = {row[0]: row[1] for row in table_rows(out, title)}
    assert record["status"] == "pending 待发" and record["attempts"] == "0"
    assert record["channels"] == "email 邮件 → in_app 站内"
    assert "pending again" in out

    from nameko.standalone.rpc import ClusterRpcProxy
    with ClusterRpcProxy({"AMQP_URI": county.uri}, context_data={"authorization": bearer()},
                         timeout=30) as cluster:
        def delivered():  # polled through RPC: a CLI run per poll would be slow
            [item] = cluster.notifications.list_notifications({"recipient_id": "m1"})["items"]
            return item["status"] == "delivered"
        wait_for(delivered, timeout=30, message="the resent follow-up delivered")
    mails = [m for m in county.endpoints.mails() if m.to == county.mail["m1"]]
    assert len(mails) == before + 1

    done = orglife("notifications", "resend", failed["notification_id"], expect=1)
    assert "Conflict" in done.stderr and "delivered" in done.stderr
    done = orglife("notifications", "resend", "nt-nothing", expect=1)
    assert "NotFound" in done.stderr
    [unknown] = orglife.json("notifications", "--status", "unknown")["items"]
    secretary = mint_token(SECRET, "sec-b1", "branch_secretary", org_id="b1")
    done = orglife("notifications", "resend", unknown["notification_id"], expect=1,
                   token=secretary)
    assert "Forbidden" in done.stderr
    again = orglife.json("notifications", "resend", unknown["notification_id"])
    assert again["status"] == "pending" and again["history"][-1]["outcome"] == "resend"
