"""The messages' words (services/notifications/templates): every kind renders in Chinese from
what its planner gives it, says what happened, what is owed and by when, and a county's own
template folder wins over the shipped one."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from services.notifications import domain
from services.notifications.texts import TemplateError, Texts
from tests.notifications.test_domain import NOW, RULES, directory, meeting

TZ = ZoneInfo("Asia/Shanghai")
HELD = datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)  # 19:30 county time


def every_draft():
    d = directory()
    future = datetime(2026, 11, 28, 11, 30, tzinfo=timezone.utc)
    scheduled = meeting(status="scheduled", expected=["m1"], held_at=future.isoformat())
    drafts = domain.plan_reminders(RULES, d, scheduled, future, NOW)
    drafts += domain.plan_cancellation_notices(d, {**scheduled, "cancel_reason": "台风"},
                                               future, ["m1"])
    drafts += domain.plan_followups(RULES, d, meeting(), HELD, NOW)
    drafts += domain.plan_due_soon(RULES, d, {"branch_id": "b1", "type": "lecture",
                                              "period": "2026-Q4", "due_on": "2026-12-31"})
    drafts += domain.plan_overdue(RULES, d, {"branch_id": "b1", "type": "branch_assembly",
                                             "period": "2026-Q3"})
    drafts += domain.plan_silent(RULES, d, {"branch_id": "b1", "days": 45,
                                            "last_meeting_at": "2026-10-10T19:30:00+08:00"})
    for level in ("notice", "alert", "review"):
        drafts += domain.plan_at_risk(RULES, d, {
            "member_id": "m1", "branch_id": "b1", "months": 6, "level": level,
            "months_list": [{"month": f"2026-0{n}", "meetings": []} for n in range(4, 10)]})
    drafts += domain.plan_grades(d, {"year": 2026, "branch_id": "b1", "grades": [
        {"member_id": "m1", "score": 92, "grade": "excellent", "recommendation": None}]})
    return drafts


def test_every_kind_renders_in_chinese_without_addresses():
    texts = Texts(TZ)
    drafts = every_draft()
    assert {d.kind for d in drafts} == set(domain.KINDS)
    for draft in drafts:
        subject, body = texts.render(draft.template, draft.context)
        assert subject.startswith("【") and body, draft.template
        for secret in ("13800138000", "13900139000", "@example.cn"):
            assert secret not in subject + body


def test_followup_says_what_happened_what_is_owed_and_by_when():
    texts = Texts(TZ)
    [followup] = [d for d in every_draft() if d.kind == "absence_followup"
                  and d.recipient_id == "m1"]
    subject, body = texts.render(followup.template, followup.context)
    assert "2026年11月24日 19:30" in body  # county time
    assert "支部党员大会" in body and "说明情况" in body
    assert "2026年12月2日前" in body  # reply within 7 days of 2026-11-25


def test_review_level_is_flagged_for_the_branch_assembly():
    texts = Texts(TZ)
    review = [d for d in every_draft() if d.kind == "member_at_risk"
              and d.context.get("level") == "review"][0]
    assert "支部党员大会议程" in texts.render(review.template, review.context)[1]


def test_the_digest_asks_the_secretary_to_tell_an_unreachable_absentee_in_person():
    texts = Texts(TZ)
    digest = [d for d in every_draft() if d.kind == "absence_digest"][0]
    _, body = texts.render(digest.template, {**digest.context, "unreachable": ["王五"]})
    assert "其中王五没有可用的电话或邮箱" in body and "请当面转告" in body
    _, plain = texts.render(digest.template, {**digest.context, "unreachable": []})
    assert "当面转告" not in plain and not plain.endswith("\n")


def test_a_county_folder_overrides_one_template(tmp_path):
    (tmp_path / "absence_followup.txt").write_text(
        "缺席提醒：{{ meeting.topic }}\n{{ member.name }}，请补学。\n", encoding="utf-8")
    texts = Texts(TZ, tmp_path)
    [followup] = [d for d in every_draft() if d.kind == "absence_followup"
                  and d.recipient_id == "m1"]
    assert texts.render(followup.template, followup.context) == ("缺席提醒：学习", "张三，请补学。")
    digest = [d for d in every_draft() if d.kind == "absence_digest"][0]
    assert texts.render(digest.template, digest.context)[0].startswith("【缺席汇总】")


def test_a_broken_county_template_is_named(tmp_path):
    (tmp_path / "due_soon.txt").write_text("{% if %}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="due_soon.txt"):
        Texts(TZ, tmp_path).check()


def test_a_county_template_failing_on_one_message_falls_back_to_the_shipped_one(tmp_path):
    (tmp_path / "grade_notice.txt").write_text("{{ grade.nonexistent }}\n正文\n",
                                               encoding="utf-8")
    [notice] = [d for d in every_draft() if d.kind == "grade_notice"]
    subject, _ = Texts(TZ, tmp_path).render(notice.template, notice.context)
    assert subject == "【年度评定】2026年度党员评定结果"
