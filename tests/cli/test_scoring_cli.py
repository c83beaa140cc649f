"""`orglife score|compliance|ranking|unevenness|at-risk|alerts|recalculate` end to end: the CLI
as a subprocess against members, meetings and scoring containers on the real broker (one
fresh vhost for the module), fed through the real event flow.

The county: the small county (b1 village with group g1, b2 community, b3 enterprise),
registered on New Year's Day 2026 (the members service's clock), so that a year of slots can
go overdue; meetings logged through RPC up to the tests' "now", 2026-11-20.
  b1: m1–m6 (m1–m3 committee, m1–m4 in g1, m5 probationary); b2: n1, n2; b3: e1, e2.
  b1 held a theme day every month (and two more: 13 in all, the 13th cut by the cap), an
  assembly and a lecture every quarter, no committee or group meetings; b2 and b3 held none.
  m6 missed everything from August: three months in a row (a notice).

The spreadsheet writer and the period names are checked first, without a broker.
"""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from orglife.common.auth import mint_token
from tests.conftest import REPO, SECRET, bearer, migrated_sqlite, service_config, unique_name, \
    wait_for
from tests.members.conftest import small_county

B1 = ["m1", "m2", "m3", "m4", "m5", "m6"]
NEW_YEAR = "2026-01-01T09:00:00+08:00"


def attendance(default="present", **special):
    """Every b1 member listed (none left to be made absent implicitly): `default` unless named
    in `special` (status → member ids)."""
    status = {member: default for member in B1}
    for state, members in special.items():
        for member in members:
            status[member] = state
    return [{"member_id": m, "status": s} for m, s in status.items()]


def b1_meetings() -> list[dict]:
    after_july = {"absent": ["m6"]}
    out = []
    theme_days = [(f"t{m:02d}", f"2026-{m:02d}-05") for m in range(1, 12)]
    theme_days += [("t12", "2026-10-25"), ("t13", "2026-11-15")]
    for ref, day in theme_days:
        out.append(("theme_day", ref, day, attendance(**(after_july if day >= "2026-08" else {}))))
    for q, day in enumerate(("2026-03-10", "2026-06-10", "2026-09-10", "2026-11-12"), 1):
        special = {"leave": ["m3"] if q <= 2 else ["m5"]}
        if q >= 3:
            special["absent"] = ["m6"]
        out.append(("branch_assembly", f"a{q}", day, attendance(**special)))
    for q, day in enumerate(("2026-02-15", "2026-05-15", "2026-08-15", "2026-11-16"), 1):
        special = {"leave": ["m3"]}
        if q == 1:
            special["absent"] = ["m4"]
        if q >= 3:
            special["absent"] = ["m6"]
        out.append(("lecture", f"l{q}", day, attendance(**special)))
    return [{"meeting_id": ref, "branch_id": "b1", "type": kind, "held_at": f"{day}T19:30:00+08:00",
             "topic": "组织生活", "attendance": rows} for kind, ref, day, rows in out]


def register_members(members):
    people = [("m1", "张伟", "b1"), ("m2", "王芳", "b1"), ("m3", "李娜", "b1"),
              ("m4", "刘洋", "b1"), ("m5", "陈静", "b1"), ("m6", "杨磊", "b1"),
              ("n1", "赵敏", "b2"), ("n2", "孙强", "b2"), ("e1", "周杰", "b3"),
              ("e2", "吴霞", "b3")]
    for n, (member_id, name, branch) in enumerate(people, 1):
        record = {"member_id": member_id, "name": name, "branch_id": branch,
                  "joined_on": "2000-07-01", "committee_member": member_id in ("m1", "m2", "m3")}
        if member_id in ("m1", "m2", "m3", "m4"):
            record["group_id"] = "g1"
        if member_id == "m5":
            record["status"] = "probationary"
        members.register_member(record)
    return len(people)


def log_first(meetings, meeting):
    """Log a meeting once meetings' copy knows its members (their events may be in flight)."""
    from orglife.common.errors import ValidationError
    try:
        meetings.log_meeting(meeting)
        return True
    except ValidationError:
        return False


@pytest.fixture(scope="module")
def county(rabbit, tmp_path_factory):
    """members, meetings and scoring running on one vhost, the county registered and its year
    logged, scoring caught up and its daily run done."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ClusterRpcProxy
    from services.meetings.service import MeetingsService
    from services.members.service import MembersService
    from services.scoring.service import ScoringService

    tmp = tmp_path_factory.mktemp("scoring-cli")
    vhost = unique_name("vh")
    rabbit.create_vhost(vhost)
    uri = rabbit.amqp_uri.rstrip("/") + "/" + vhost
    containers = []
    try:
        for service, cls, extra in (("members", MembersService, {"ORGLIFE_NOW": NEW_YEAR}),
                                    ("meetings", MeetingsService, {}),
                                    ("scoring", ScoringService, {})):
            config = service_config(service, uri, migrated_sqlite(tmp, service), tmp, **extra)
            containers.append(ServiceContainer(cls, config))
            containers[-1].start()
        with ClusterRpcProxy({"AMQP_URI": uri}, context_data={"authorization": bearer()},
                             timeout=30) as cluster:
            small_county(cluster.members)
            people = register_members(cluster.members)
            meetings = b1_meetings()
            wait_for(lambda: log_first(cluster.meetings, meetings[0]),
                     message="meetings' copy of the members")
            for meeting in meetings[1:]:
                cluster.meetings.log_meeting(meeting)
            cluster.meetings.log_activity({"activity_id": "v1", "member_id": "m3",
                                           "kind": "volunteer", "note": "义务植树",
                                           "held_at": "2026-04-12T09:00:00+08:00"})

            def caught_up():
                health = cluster.scoring.health()
                return (health["known_meetings"] == len(meetings)
                        and health["known_members"] == people
                        and cluster.scoring.member_score("m3")["score"] == 91)
            wait_for(caught_up, timeout=30, message="scoring's copy of the year")
            cluster.scoring.run_daily()
        yield SimpleNamespace(uri=uri, tmp=tmp, meetings=len(meetings))
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

    def run(*args, expect=0):
        done = subprocess.run([sys.executable, "-m", "orglife", *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
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


# -- no broker: the writer and the names -----------------------------------------------------------
def test_write_xlsx_keeps_text_as_text_and_formats_rates(tmp_path):
    from orglife.cli.common import Sheet, write_xlsx
    path = write_xlsx(tmp_path / "报表.xlsx", [
        Sheet("达标:情况?", ["支部", "达标率", "备注"],
              [["=HYPERLINK(\"x\")", 0.5, None], ["石桥村党支部", 1.0, True]], {"达标率": "0.0%"}),
        ("达标:情况?", ["空"], []),
    ])
    import openpyxl
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["达标_情况_", "达标_情况_ (2)"]
    ws = book.worksheets[0]
    assert [c.value for c in ws[1]] == ["支部", "达标率", "备注"]
    assert ws["A2"].value == '=HYPERLINK("x")' and ws["A2"].data_type == "s"  # no formula
    assert ws["B2"].number_format == "0.0%" and ws["C3"].value == "是" and ws["C2"].value is None
    assert ws.freeze_panes == "A2"
    assert [p.name for p in tmp_path.iterdir()] == ["报表.xlsx"]  # no temporary file left


def test_a_file_that_cannot_be_written_is_a_usage_error(tmp_path):
    import typer

    from orglife.cli.common import check_xlsx_path, write_xlsx
    with pytest.raises(typer.Exit) as exit_:
        write_xlsx(tmp_path / "gone" / "x.xlsx", [("表", ["a"], [[1]])])
    assert exit_.value.exit_code == 2
    for bad in (tmp_path / "x.csv", tmp_path / "gone" / "x.xlsx", tmp_path):
        with pytest.raises(typer.BadParameter):
            check_xlsx_path(bad)
    assert check_xlsx_path(tmp_path / "ok.xlsx") == tmp_path / "ok.xlsx"


def test_periods_and_alerts_in_chinese():
    from orglife.cli.scoring import alert_chinese
    from orglife.common.vocabulary import period_zh as period_chinese
    assert [period_chinese(p) for p in ("2026-Q1", "2026-03", "2026")] == [
        "2026年第1季度", "2026年3月", "2026年"]
    assert alert_chinese({"kind": "branch_overdue", "data": {
        "type": "group", "period": "2026-Q2", "group_id": "g1"}}) == \
        "2026年第2季度党小组会（党小组 g1）逾期未开展"


# -- score -----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_score_line_by_line_with_the_clamp(orglife, tmp_path):
    path = tmp_path / "张伟积分.xlsx"
    done = orglife("score", "m1", "--year", "2026", "--xlsx", path)
    out = done.stdout
    assert "张伟" in out and "excellent 优秀" in out and "formal 正式党员" in out
    rows = table_rows(out, "breakdown")
    assert len(rows) == 1 + 13 + 4 + 4
    assert rows[0][:2] == ["", "base 基础分"] and rows[0][5] == "60"
    assert sum(int(row[5]) for row in rows) == 104  # the lines sum to the raw score
    assert "raw 104 → clamped to 100" in out
    assert "theme_day 主题党日" in out and "branch_assembly 支部党员大会" in out
    assert "lecture 党课" in out and "attended 出席" in out
    [cut] = [row for row in rows if row[6]]
    assert cut[4] == "t13" and cut[5] == "+0" and cut[6] == "capped 封顶"
    assert "wrote" in done.stderr

    sheets = workbook(path)
    assert list(sheets) == ["积分明细", "积分汇总"]
    detail = sheets["积分明细"]
    assert detail[0] == ["日期", "类型", "支部", "事项", "积分", "封顶", "编号"]
    assert detail[1][3:5] == ["基础分", 60]
    assert ["2026-11-15", "主题党日", "b1", "出席", 0, "是", "t13"] in detail
    assert detail[-1][3:5] == ["合计", 104]
    assert sum(row[4] for row in detail[1:-1]) == 104
    summary = dict(sheets["积分汇总"][1:])
    assert summary["积分"] == 100 and summary["明细合计"] == 104 and summary["等次"] == "优秀"
    assert summary["姓名"] == "张伟" and "计为100分" in summary["说明"]


@pytest.mark.integration
def test_score_absences_activities_and_a_recommendation(orglife):
    m6 = orglife("score", "m6").stdout  # the current year by default
    rows = table_rows(m6, "breakdown")
    absences = [row for row in rows if row[1] == "absence 缺席"]
    assert len(absences) == 10 and {row[5] for row in absences} == {"-3"}
    assert sum(int(row[5]) for row in rows) == 54
    assert "sum of the lines: 54 = score 54" in m6 and "unqualified 不合格" in m6
    m3 = orglife("score", "m3").stdout
    assert "volunteer 志愿服务" in m3 and "leave 请假" in m3
    assert "sum of the lines: 91 = score 91" in m3
    m5 = orglife("score", "m5").stdout
    assert "recommendation" in m5 and "confirm 按期转正" in m5 and "probationary 预备党员" in m5
    result = orglife.json("score", "m5", "--year", "2026")
    assert (result["score"], result["grade"], result["recommendation"]) == (98, None, "confirm")
    assert sum(line["points"] for line in result["breakdown"]) == result["raw"] == 98
    done = orglife("score", "ghost", expect=1)
    assert "NotFound" in done.stderr and "ghost" in done.stderr


# -- compliance ------------------------------------------------------------------------------------
@pytest.mark.integration
def test_compliance_per_type_with_the_light_and_missed_slots(orglife, tmp_path):
    path = tmp_path / "达标.xlsx"
    out = orglife("compliance", "b1", "--xlsx", path).stdout
    assert "石桥村党支部" in out and "village 村" in out and "red 红灯" in out
    per_type = {row[0]: row[1:] for row in table_rows(out, "by meeting type")}
    assert per_type["theme_day 主题党日"] == ["11", "11", "13", "100.0%"]
    assert per_type["committee 支部委员会"] == ["10", "0", "0", "0.0%"]
    assert per_type["group 党小组会"][:2] == ["10", "0"]
    assert per_type["overall 合计"] == ["39", "19", "21", "48.7%"]
    missed = table_rows(out, "missed slots (20)")
    assert ["committee 支部委员会", "2026-01", ""] in missed
    assert ["group 党小组会", "2026-10", "g1"] in missed

    sheets = workbook(path)
    assert list(sheets) == ["组织生活达标情况", "未完成", "即将到期", "支部概况"]
    assert sheets["组织生活达标情况"][0] == ["会议类型", "应达标", "已达标", "已开展", "达标率"]
    assert ["主题党日", 11, 11, 13, 1.0] in sheets["组织生活达标情况"]
    assert sheets["组织生活达标情况"][-1][:4] == ["合计", 39, 19, 21]
    assert sheets["未完成"][0] == ["会议类型", "期间", "党小组"]
    assert ["党小组会", "2026年10月", "g1"] in sheets["未完成"] and len(sheets["未完成"]) == 21
    summary = dict(sheets["支部概况"][1:])
    assert summary["预警"] == "红灯" and summary["支部类别"] == "村"

    earlier = orglife("compliance", "b1", "--year", "2026", "--as-of", "2026-10-25").stdout
    due = table_rows(earlier, "due soon")
    assert ["committee 支部委员会", "2026-10", "", "2026-10-31"] in due
    result = orglife.json("compliance", "b1", "--as-of", "2026-10-25")
    assert result["as_of"] == "2026-10-25" and result["due_soon"]
    assert {"type", "period", "group_id"} <= set(result["missed"][0])
    orglife("compliance", "b1", "--as-of", "25/10/2026", expect=2)


# -- ranking ---------------------------------------------------------------------------------------
@pytest.mark.integration
def test_rankings_share_ranks_on_ties(orglife, tmp_path):
    path = tmp_path / "排名.xlsx"
    out = orglife("ranking", "c1", "--level", "member", "--xlsx", path).stdout
    rows = table_rows(out, "member ranking under c1")
    ranks = {row[1]: (int(row[0]), int(row[4])) for row in rows}
    assert ranks["m1"] == ranks["m2"] == (1, 100)
    assert ranks["m4"][0] == 3 and ranks["m6"] == (10, 54)
    assert {ranks[m][0] for m in ("n1", "n2", "e1", "e2")} == {6}
    assert "excellent 优秀" in out and "confirm 按期转正" in out
    sheet = workbook(path)["排名"]
    assert sheet[0] == ["名次", "党员编号", "党员", "支部", "积分", "等次", "转正建议"]
    assert sheet[1][:2] == [1, "m1"] and sheet[2][:2] == [1, "m2"]

    out = orglife("ranking", "c1").stdout  # branches by default
    rows = table_rows(out, "branch ranking under c1")
    assert [(row[0], row[1]) for row in rows] == [("1", "b1"), ("2", "b2"), ("2", "b3")]
    assert "白沙社区党支部" in out and "enterprise 非公企业" in out and "red 红灯" in out
    page = orglife.json("ranking", "t1", "--level", "member", "--limit", "2")
    assert page["total"] == 8 and [i["member_id"] for i in page["items"]] == ["m1", "m2"]
    orglife("ranking", "c1", "--level", "province", expect=2)


# -- unevenness ------------------------------------------------------------------------------------
@pytest.mark.integration
def test_unevenness_by_category(orglife, tmp_path):
    path = tmp_path / "不平衡.xlsx"
    out = orglife("unevenness", "c1", "--xlsx", path).stdout
    rows = {row[0]: row[1:] for row in table_rows(out, "compliance by branch category")}
    assert rows["village 村"] == ["1", "48.7%", "48.7%", "48.7%", "1"]
    assert rows["community 社区"] == ["1", "0.0%", "0.0%", "0.0%", "1"]
    assert "enterprise 非公企业" in rows and "below 0.6" in out
    sheet = workbook(path)["不平衡情况"]
    assert sheet[0] == ["类别", "支部数", "平均达标率", "最低", "最高", "低于0.6"]
    assert ["社区", 1, 0.0, 0.0, 0.0, 1] in sheet
    assert orglife.json("unevenness", "t1")["categories"][0]["category"] == "enterprise"


# -- members at risk -------------------------------------------------------------------------------
@pytest.mark.integration
def test_members_at_risk_with_the_meetings_missed(orglife, tmp_path):
    path = tmp_path / "预警党员.xlsx"
    out = orglife("at-risk", "c1", "--xlsx", path).stdout
    [row] = table_rows(out, "members at risk under c1")
    assert row == ["m6", "杨磊", "b1", "3", "notice 提醒", "2026-10, 2026-09, 2026-08"]
    missed = table_rows(out, "meetings missed")
    assert ["m6", "杨磊", "2026-09", "a3", "branch_assembly 支部党员大会", "2026-09-10",
            "b1"] in missed
    assert {r[3] for r in missed} == {"t08", "l3", "t09", "a3", "t10", "t12"}
    sheets = workbook(path)
    assert sheets["预警党员"] == [
        ["党员编号", "姓名", "支部", "连续未参加月数", "预警级别", "未参加月份"],
        ["m6", "杨磊", "b1", 3, "提醒", "2026-10、2026-09、2026-08"]]
    assert sheets["未参加会议明细"][0] == ["党员编号", "姓名", "月份", "会议编号", "会议类型",
                                      "日期", "支部"]
    assert len(sheets["未参加会议明细"]) == 7
    assert orglife.json("at-risk", "b2")["items"] == []


# -- alerts ----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_alerts_say_what_they_are_about(orglife, tmp_path):
    path = tmp_path / "预警提醒.xlsx"
    out = orglife("alerts", "c1", "--limit", "100", "--xlsx", path).stdout
    assert "alerts, newest first (55 of 55)" in out
    assert "no meeting for 323 days (last meeting none since registration)" in out
    assert "committee 支部委员会 for 2026-03 not held (overdue)" in out
    assert "group 党小组会 for 2026-10, group g1 not held (overdue)" in out
    assert "missed 3 months in a row (2026-10, 2026-09, 2026-08): notice 提醒" in out
    assert "branch_silent 支部长期未开展组织生活" in out
    sheet = workbook(path)["预警提醒"]
    assert sheet[0] == ["提醒时间", "类型", "支部", "党员", "内容"]
    says = {row[4] for row in sheet[1:]}
    assert "2026年3月支部委员会逾期未开展" in says
    assert "已连续323天未开展组织生活（最近一次会议：登记以来无）" in says
    assert "连续3个月未参加组织生活（2026-10、2026-09、2026-08），预警级别：提醒" in says

    silent = orglife.json("alerts", "c1", "--kind", "branch_silent")
    assert silent["total"] == 2 and {a["branch_id"] for a in silent["items"]} == {"b2", "b3"}
    overdue = orglife("alerts", "t2", "--kind", "branch_overdue", "--limit", "3").stdout
    assert "(3 of 16)" in overdue and "b1" not in overdue
    orglife("alerts", "c1", "--kind", "everything", expect=2)


# -- recalculation and bad usage -------------------------------------------------------------------
@pytest.mark.integration
def test_recalculate_and_files_that_cannot_be_written(orglife, tmp_path):
    out = orglife("recalculate", "2026").stdout
    assert "recalculated 2026" in out and "members" in out
    result = orglife.json("recalculate", "2026")
    # the members with lines in 2026 (absences are lines too) are the ones rescored
    assert (result["year"], result["members"], result["branches"]) == (2026, 6, 3)
    assert orglife.json("score", "m1")["score"] == 100  # the same figures again

    done = orglife("score", "m1", "--xlsx", tmp_path / "no" / "such" / "folder.xlsx", expect=2)
    assert "does not exist" in done.stderr
    done = orglife("ranking", "c1", "--xlsx", tmp_path / "ranking.csv", expect=2)
    assert ".xlsx" in done.stderr
    (tmp_path / "a-folder.xlsx").mkdir()
    orglife("unevenness", "c1", "--xlsx", tmp_path / "a-folder.xlsx", expect=2)


def test_a_due_soon_alert_reads_in_both_languages_and_can_be_chosen():
    from orglife.cli.scoring import AlertKind, alert_chinese, alert_says
    alert = {"kind": "branch_due_soon", "data": {"branch_id": "b1", "type": "lecture",
                                                 "period": "2026-Q4", "group_id": None,
                                                 "due_on": "2026-12-31"}}
    assert "due 2026-12-31" in alert_says(alert)
    assert alert_chinese(alert).endswith("尚未开展，2026-12-31到期")
    assert AlertKind("branch_due_soon")
