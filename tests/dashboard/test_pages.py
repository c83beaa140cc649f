"""The dashboard's pages as data and as HTML, over the real services' workers (conftest.py):
what each page shows, that its tables download as .xlsx with Chinese headers, that it asks
a few calls whatever the size of the county, and that scopes hold."""
import io
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from orglife.common.errors import Forbidden
from orglife.common.rules import load_rules
from services.dashboard import pages
from services.dashboard.present import (
    Badge, Link, Ratio, Table, cols, mask_phone, truncated, xlsx_bytes,
)
from services.dashboard.rendering import render
from tests.dashboard.conftest import attendance, principal, register_village

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 20)
NINE = [f"m{n}" for n in range(1, 10)]


def meeting(meeting_id, branch_id, type_, day, **who):
    return {"meeting_id": meeting_id, "branch_id": branch_id, "type": type_,
            "held_at": f"{day}T19:30:00", "topic": f"主题{meeting_id}",
            "attendance": attendance(**who)}


@pytest.fixture
def county(pipeline):
    """b1 (village, t1): theme days June–October and two assemblies, m9 absent at each;
    张伟 (m10, a phone) present; b2 (community, t2) one theme day; b3 (enterprise) nothing."""
    register_village(pipeline)
    pipeline.members.register_member({"member_id": "m10", "name": "张伟", "branch_id": "b1",
                                      "phone": "13800138000", "joined_on": "2001-07-01"})
    pipeline.deliver()
    for month in range(6, 11):
        pipeline.meetings.log_meeting(meeting(f"td{month}", "b1", "theme_day",
                                              f"2026-{month:02d}-15",
                                              present=NINE[:8] + ["m10"], absent=["m9"]))
    pipeline.meetings.log_meeting(meeting("a2", "b1", "branch_assembly", "2026-05-10",
                                          present=NINE[:7] + ["m10"], leave=["m8"],
                                          absent=["m9"]))
    pipeline.meetings.log_meeting(meeting("a3", "b1", "branch_assembly", "2026-08-10",
                                          present=["m1", "m2"], absent=NINE[2:] + ["m10"]))
    pipeline.meetings.log_activity({"activity_id": "v1", "member_id": "m10",
                                    "kind": "household_visit", "held_at": "2026-09-01T10:00",
                                    "household": "李大爷家"})
    pipeline.meetings.log_meeting(meeting("n-td", "b2", "theme_day", "2026-03-03",
                                          present=["n1"], absent=["n2"]))
    pipeline.deliver()
    return pipeline


def period(year=2026, as_of=None):
    return pages.Period(year, as_of, TODAY)


def html(page, role="county_admin", org_id=None, path="/"):
    return render(page.template, page=page, user=principal(role, org_id), path=path, query="")


def text_of(cell):
    if isinstance(cell, (Link, Badge)):
        return str(cell.text)
    if isinstance(cell, Ratio):
        return str(cell)
    return "" if cell is None else str(cell)


def test_the_county_overview(county, reads_as):
    reads = reads_as()
    page = pages.overview(reads, principal(), "c1", period(), TZ)
    data = page.data
    assert data["counts"]["branches"] == 3 and data["counts"]["members"] == 12
    assert data["counts"]["meetings"] == 8  # logged, not cancelled, this year
    assert sum(data["counts"]["lights"].values()) == 3
    assert [row["name"] for row in data["grid"]] == ["石桥镇", "白沙乡"]
    assert [len(row["branches"]) for row in data["grid"]] == [2, 1]  # b3 under gb1 is t1's
    assert data["counts"]["at_risk"]["review"] == 1  # m9: May to October
    tables = page.tables
    assert {"townships", "branches", "top", "bottom", "unevenness", "at_risk", "alerts",
            "notifications", "notifications_failed"} <= set(tables)
    categories = [row[0] for row in tables["unevenness"].rows]
    assert sorted(categories) == sorted(["社区", "村", "非公企业"])  # names, never codes
    [risk] = [row for row in tables["at_risk"].rows if text_of(row[0]) == "党员9"]
    assert (risk[2], text_of(risk[3])) == (6, "提请审议")
    assert "2026年5月" in risk[4]
    # one call per question, never one per branch or member
    assert sorted(reads.calls) == sorted([
        "members.get_organization", "scoring.branch_overview", "scoring.members_at_risk",
        "scoring.list_alerts", "meetings.list_meetings", "notifications.notification_summary",
        "notifications.list_notifications", "notifications.list_notifications"])
    out = html(page, path="/org/c1")
    assert "青山县 组织生活总览" in out
    assert out.count('class="cell ') == 3 and 'data-light="' in out
    assert "/org/c1/export/unevenness.xlsx" in out and "village" not in out
    assert "达标率低于60.0%" in out and "达标率低于80.0%" in out  # the rules file's lights


def test_the_lights_legend_follows_the_rules_file(county, reads_as):
    from orglife.common.rules import load_rules
    rules = load_rules()
    rules.raw["lights"] = {"red_below": 0.5, "yellow_below": 0.75}
    out = html(pages.overview(reads_as(), principal(), "c1", period(), TZ, rules=rules),
               path="/org/c1")
    assert "达标率低于50.0%" in out and "达标率低于75.0%" in out and "60.0%" not in out


def test_every_table_downloads_with_chinese_headers(county, reads_as):
    reads = reads_as()
    for page in (pages.overview(reads, principal(), "c1", period(), TZ),
                 pages.branch(reads, principal(), "b1", period(), TZ),
                 pages.member(reads, principal(), "m10", period(), TZ)):
        for key, table in page.tables.items():
            book = load_workbook(io.BytesIO(xlsx_bytes([table])))
            sheet = book.worksheets[0]
            headers = [cell.value for cell in sheet[1]]
            assert headers == table.headers, key
            assert all(any("\u4e00" <= ch <= "\u9fff" for ch in h) for h in headers), key
            assert sheet.max_row == 1 + len(table.rows) + (1 if table.footer else 0) + (
                1 if truncated(table) else 0), key
            for row in sheet.iter_rows(min_row=2, values_only=True):
                assert "13800138000" not in [str(v) for v in row], key
    shown = Table("at_risk", "连续未参加组织生活的党员", cols("党员"), [["张伟"], ["李娜"]], total=57)
    sheet = load_workbook(io.BytesIO(xlsx_bytes([shown]))).worksheets[0]
    assert [row[0] for row in sheet.iter_rows(values_only=True)] == [
        "党员", "张伟", "李娜", "仅含前 2 条，共 57 条"]  # a partial list says so


def test_a_branch_page(county, reads_as):
    reads = reads_as()
    page = pages.branch(reads, principal(), "b1", period(), TZ)
    figures = page.data["figures"]
    assert page.data["township"] == "石桥镇"
    by_type = page.table("by_type")
    assert by_type.footer[2] == figures["required"] and by_type.footer[3] == figures["met"]
    assert by_type.footer[4] == len(figures["missed"])
    rows = {text_of(r[0]): r for r in page.table("members").rows}
    assert rows["张伟"][6] == "138****8000"
    assert rows["党员9"][9].text.startswith("连续6个月未参加")
    meetings = {r[2]: r for r in page.table("meetings").rows}
    assert meetings["主题a3"][8].startswith("未达到")  # 2 of 10 voting members present
    assert text_of(meetings["主题a3"][9]) == "不计入达标"
    assert text_of(meetings["主题td6"][9]) == "有效"
    grid = page.data["grid"]
    theme = next(row for row in grid["rows"] if row["type"] == "主题党日")
    assert sum(cell["span"] for cell in theme["cells"]) == 12
    assert [c["label"] for c in theme["cells"] if not c["blank"]][5:10] == ["已达标"] * 5
    assert len(reads.calls) <= 10
    out = html(page, path="/branch/b1")
    assert "13800138000" not in out and "138****8000" in out
    assert "支部党员大会" in out and "branch_assembly" not in out


def test_a_member_page_sums_line_by_line(county, reads_as):
    reads = reads_as()
    page = pages.member(reads, principal(), "m10", period(), TZ)
    score = page.data["score"]
    lines = page.table("breakdown").rows
    assert sum(row[5] for row in lines) == page.data["raw"] == score["raw"]
    assert page.table("breakdown").footer[5] == score["raw"]
    assert lines[0][1] == "基础分" and lines[0][5] == 60
    assert any(row[1] == "缺席（未请假）" and row[5] == -3 for row in lines)
    assert any(row[1] == "活动" and row[2] == "走访联系户" for row in lines)
    assert page.data["phone"] == "138****8000"
    out = html(page, path="/member/m10")
    assert "13800138000" not in out and f'data-score="{score["score"]}"' in out
    nine = pages.member(reads, principal(), "m9", period(), TZ)
    streak = nine.table("streak").rows
    assert [row[0] for row in streak][:1] == ["2026年10月"]
    assert {row[4] for row in streak} >= {"td10", "td6", "a2"}
    assert {row[3] for row in streak if row[4]} == {nine.data["branch"]["name"]}  # not its id
    assert nine.data["risk"]["level"] == "review"


def test_scopes_hold_on_every_page(county, reads_as):
    township = reads_as("township_admin", "t2")
    who = principal("township_admin", "t2")
    page = pages.overview(township, who, "t2", period(), TZ)
    assert [row["name"] for row in page.data["grid"]] == ["白沙乡"]
    assert page.data["counts"]["branches"] == 1
    assert [c.text for c in page.crumbs] == ["白沙乡"]  # its trail starts at its township
    for show, ident in ((pages.overview, "t1"), (pages.overview, "c1"),
                        (pages.branch, "b1"), (pages.member, "m1")):
        with pytest.raises(Forbidden):
            show(township, who, ident, period(), TZ)
    secretary = reads_as("branch_secretary", "b1")
    page = pages.branch(secretary, principal("branch_secretary", "b1"), "b1", period(), TZ)
    assert [c.text for c in page.crumbs] == ["石桥村党支部"]
    with pytest.raises(Forbidden):
        pages.branch(secretary, principal("branch_secretary", "b1"), "b2", period(), TZ)


def test_where_each_user_starts(county, reads_as):
    assert pages.landing(reads_as(), principal(), period()).redirect == "/org/c1"
    assert pages.landing(reads_as("township_admin", "t2"),
                         principal("township_admin", "t2"), period()).redirect == "/org/t2"
    assert pages.landing(reads_as("branch_secretary", "b1"), principal("branch_secretary", "b1"),
                         period(2025)).redirect == "/branch/b1?year=2025"
    assert pages.overview(reads_as(), principal(), "b1", period(), TZ).redirect == "/branch/b1"
    assert pages.branch(reads_as(), principal(), "t1", period(), TZ).redirect == "/org/t1"


def test_an_earlier_day_and_year_are_shown_as_of_then(county, reads_as):
    page = pages.branch(reads_as(), principal(), "b1", period(2026, date(2026, 7, 1)), TZ)
    assert page.data["figures"]["as_of"] == "2026-07-01"
    assert all(r[0] < "2026-07-02" for r in page.table("meetings").rows)
    page = pages.overview(reads_as(), principal(), "c1", period(2026, date(2026, 9, 5)), TZ)
    assert page.data["counts"]["at_risk"]["notice"] == 1  # m9: May to August then


def test_phones_are_masked():
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("+86 138-0013-8000") == "138****8000"
    assert mask_phone("138 0013 8000") == "138****8000"
    assert mask_phone("12345") == "***45"
    assert mask_phone(None) == "" and mask_phone("") == ""


def test_failed_and_unknown_notifications_are_on_the_overview(county, reads_as):
    """The overview lists what could not be sent (failed) and what may or may not have
    arrived (unknown, a send cut by a crash), newest first, and counts them by kind and
    status; what notifications answers is shown as it comes."""
    reads = reads_as()

    class Troubled:
        def notification_summary(self, org_id=None):
            return {"items": [
                {"kind": "absence_followup", "channel": "email", "status": "failed", "count": 1},
                {"kind": "absence_followup", "channel": "in_app", "status": "unknown",
                 "count": 1},
                {"kind": "absence_digest", "channel": "email", "status": "delivered",
                 "count": 3}]}

        def list_notifications(self, filters=None):
            item = {"recipient_id": "m1", "recipient_name": "党员1", "kind": "absence_followup",
                    "attempts": 5}
            if filters["status"] == "failed":
                found = [{**item, "status": "failed", "channel": "email",
                          "created_at": "2026-11-19T02:00:00+00:00",
                          "last_error": "email: mailbox refused (SMTP 550 5.1.1 no such user)"}]
            else:
                found = [{**item, "recipient_id": "m3", "recipient_name": None,
                          "status": "unknown",
                          "channel": "in_app", "attempts": 1,
                          "created_at": "2026-11-19T03:00:00+00:00",
                          "last_error": "the sender stopped while sending; it may have been "
                                        "delivered"}]
            return {"items": found, "total": len(found)}
    from tests.dashboard.conftest import WorkerProxy
    reads.proxies["notifications"] = WorkerProxy(Troubled(), reads.calls, "notifications")
    page = pages.overview(reads, principal(), "c1", period(), TZ)
    troubled = page.tables["notifications_failed"]
    assert [(row[4], text_of(row[3]), row[6]) for row in troubled.rows] == [
        ("m3", "结果不明", "发送过程中发送服务停止，可能已送达"),
        ("党员1（m1）", "失败", "邮件：mailbox refused (SMTP 550 5.1.1 no such user)")]
    by_kind = {row[0]: row[1:] for row in page.tables["notifications"].rows}
    assert by_kind["缺席跟进"][-1] == 2 and by_kind["缺席汇总"][-1] == 3
    out = html(page, path="/org/c1")
    assert "发送失败或结果不明的通知" in out and "SMTP 550 5.1.1 no such user" in out
    assert "the sender stopped" not in out


def test_the_member_page_shows_the_grade_or_recommendation_and_what_a_cap_cut(county,
                                                                             reads_as):
    """m10 at five lectures (2 points each, cap 8: the fifth is cut) and graded; a
    probationary member gets the recommendation instead of a grade."""
    pipeline = county
    pipeline.members.register_member({"member_id": "p1", "name": "预备甲", "branch_id": "b1",
                                      "status": "probationary", "joined_on": "2026-01-01"})
    pipeline.deliver()
    for month in range(1, 6):
        pipeline.meetings.log_meeting(meeting(f"lec{month}", "b1", "lecture",
                                              f"2026-{month:02d}-20", present=["m10", "p1"]))
    pipeline.deliver()
    reads = reads_as()
    page = pages.member(reads, principal(), "m10", period(), TZ, rules=load_rules())
    score = page.data["score"]
    lectures = next(row for row in page.table("by_kind").rows if row[0] == "出席·党课")
    assert lectures[1:] == [5, 8, 8, 1]  # count, points, yearly cap, cut by the cap
    assert [row[6] for row in page.table("breakdown").rows].count("封顶") == 1
    grade = {"excellent": "优秀", "qualified": "合格", "basic": "基本合格",
             "unqualified": "不合格"}[score["grade"]]
    assert page.data["standing"] == grade and grade in html(page, path="/member/m10")
    probationary = pages.member(reads, principal(), "p1", period(), TZ)
    assert probationary.data["score"]["grade"] is None
    assert probationary.data["standing"].startswith("转正建议：")
    assert probationary.data["standing"] in html(probationary, path="/member/p1")


def test_a_meetings_warnings_are_in_chinese(county, reads_as):
    """A meeting that lists someone not yet a member on its day: the branch page says so in
    Chinese (the meetings service words its warning in English for the CLI)."""
    pipeline = county
    pipeline.members.register_member({"member_id": "m11", "name": "新党员", "branch_id": "b1",
                                      "joined_on": "2026-10-01"})
    pipeline.deliver()
    pipeline.meetings.log_meeting(meeting("early", "b1", "study", "2026-09-20",
                                          present=["m1", "m11"]))
    pipeline.deliver()
    page = pages.branch(reads_as(), principal(), "b1", period(), TZ)
    row = next(r for r in page.table("meetings").rows if r[2] == "主题early")
    assert row[10] == "m11 当日尚未入党，按非党员参会记录，不计分"
    out = html(page, path="/branch/b1")
    assert "non-member" not in out and "counting for nothing" not in out
    # one the meetings service stored before it gave the warning's code reads the same
    assert pages.warning_text({"field": "attendance.1.member_id", "message":
                               "'m5' was transferred_out on that date: recorded as a "
                               "non-member attendee, counting for nothing"}) == \
        "m5 当日已不在册（已转出），按非党员参会记录，不计分"
    assert pages.warning_text({"field": "attendance.0.member_id", "message":
                               "\"o'k\" was not yet a member on that date: recorded as a "
                               "non-member attendee, counting for nothing"}) == \
        "o'k 当日尚未入党，按非党员参会记录，不计分"
    assert pages.warning_text({"message": "something else"}) == "something else"


def test_the_latest_alerts_are_listed_newest_first_in_chinese(county, reads_as, scoring_worker,
                                                               scoring_clock, scoring_store):
    """scoring's daily run today finds b1 and b2 silent (b1's last meeting October 15, b2's
    March 3) and m9 at risk; on December 1 November's slots left unmet are overdue. The
    overview lists the alerts newest first, named in Chinese, the member by the name the
    alert carries; a branch's red, a member's yellow."""
    scoring_store.clock = scoring_clock  # alerts stamped by the moving clock, as in service
    scoring = scoring_worker()
    scoring.run_daily()
    scoring_clock.set(date(2026, 12, 1))
    scoring.run_daily()
    page = pages.overview(reads_as(), principal(), "c1", period(), TZ)
    table = page.table("alerts")
    rows = table.rows
    assert rows[0][0].startswith("2026-12-01") and rows[0][1] == "组织生活逾期未开展"
    assert "2026年11月" in rows[0][4] and rows[-1][0].startswith("2026-11-20")
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert table.total > len(rows) == 10  # the latest ten of them
    assert scoring.list_alerts({"org_id": "c1", "kind": "member_at_risk"})["items"][0][
        "data"]["name"] == "党员9"  # the alert names the member itself
    tones = {"组织生活逾期未开展": "red", "长期未开展组织生活": "red",
             "党员连续未参加组织生活": "yellow"}
    assert table.row_tones == [tones[row[1]] for row in rows]


def test_an_alert_names_the_member_and_says_what_happened(county, reads_as, scoring_worker):
    scoring_worker().run_daily()
    rows = pages.overview(reads_as(), principal(), "c1", period(), TZ).table("alerts").rows
    assert {r[1] for r in rows} == {"党员连续未参加组织生活", "长期未开展组织生活"}
    nine = next(r for r in rows if r[1] == "党员连续未参加组织生活")
    assert text_of(nine[3]) == "党员9" and nine[3].href.startswith("/member/m9")
    assert nine[4].startswith("连续 6 个月未参加（")
    silent = [r for r in rows if r[1] == "长期未开展组织生活"]
    assert {(text_of(r[2]), r[4]) for r in silent} == {
        ("石桥村党支部", "已 36 天未开展任何组织生活"),
        ("白沙社区党支部", "已 262 天未开展任何组织生活")}
