"""The rules of who hears what and when (services/notifications/domain.py), as plain
functions over an in-memory directory: no database, no broker."""
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from orglife.common.rules import load_rules
from services.notifications import domain
from services.notifications.domain import Contact, Org, Preference

TZ = ZoneInfo("Asia/Shanghai")
RULES = load_rules()
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)  # 10:00 county time


class Directory:
    def __init__(self, contacts=(), orgs=(), preferences=None, default_robot=False,
                 available=domain.MEMBER_CHANNELS):
        self.contacts = {c.member_id: c for c in contacts}
        self.orgs = {o.org_id: o for o in orgs}
        self.preferences = preferences or {}
        self.robot = default_robot
        self.channels = available

    def contact(self, member_id):
        return self.contacts.get(member_id)

    def org(self, org_id):
        return self.orgs.get(org_id)

    def preference(self, member_id):
        return self.preferences.get(member_id, Preference())

    def default_robot(self):
        return self.robot

    def available(self):
        return self.channels


COUNTY = Org("c1", "示范县委", "county")
TOWNSHIP = Org("t1", "城关镇党委", "township", "c1", secretary_id="officer",
               robot_url="https://oapi.dingtalk.com/robot/send?access_token=x")
BRANCH = Org("b1", "东村党支部", "branch", "t1", secretary_id="sec")
PEOPLE = [
    Contact("sec", "王书记", "b1", "formal", phone="13800138000", email="wang@example.cn"),
    Contact("officer", "李委员", "t1b", "formal", email="li@example.cn"),
    Contact("m1", "张三", "b1", "formal", email="zhang@example.cn", phone="13900139000"),
    Contact("m2", "李四", "b1", "formal", phone="13700137000"),
    Contact("m3", "王五", "b1", "formal"),  # no phone, no e-mail
]


def directory(**kwargs):
    return Directory(PEOPLE, [COUNTY, TOWNSHIP, BRANCH], **kwargs)


def meeting(**changes):
    base = {"meeting_id": "mt1", "branch_id": "b1", "type": "branch_assembly",
            "held_at": "2026-11-24T11:30:00+00:00", "topic": "学习", "revision": 1,
            "status": "logged", "attendance": [
                {"member_id": "m1", "status": "absent", "expected": True},
                {"member_id": "m2", "status": "present", "expected": True},
                {"member_id": "m3", "status": "absent", "expected": True},
                {"member_id": "v9", "status": "absent", "expected": False}]}
    return {**base, **changes}


def test_channel_order_defaults_keeps_reachable_ones_and_ends_in_app():
    assert domain.member_channels(PEOPLE[2], Preference()) == ["email", "sms", "in_app"]
    assert domain.member_channels(PEOPLE[3], Preference()) == ["sms", "in_app"]
    assert domain.member_channels(PEOPLE[4], Preference()) == ["in_app"]
    assert domain.member_channels(PEOPLE[2], Preference(("sms", "email"))) == [
        "sms", "email", "in_app"]
    assert domain.member_channels(PEOPLE[3], Preference(("email",))) == ["in_app"]


@pytest.mark.parametrize("local, quiet", [
    (time(21, 59), False), (time(22, 0), True), (time(3, 0), True), (time(6, 59), True),
    (time(7, 0), False), (time(12, 0), False)])
def test_quiet_hours_wrap_midnight(local, quiet):
    assert domain.in_quiet_hours(local, (time(22), time(7))) is quiet


def test_quiet_hours_defer_to_their_end_unless_urgent():
    late = datetime(2026, 11, 25, 23, 30, tzinfo=TZ)
    window = (time(22), time(7))
    assert domain.send_after(None, late, False, window, TZ) == datetime(2026, 11, 26, 7, 0,
                                                                         tzinfo=TZ)
    assert domain.send_after(None, late, True, window, TZ) == late
    early = datetime(2026, 11, 26, 6, 0, tzinfo=TZ)
    assert domain.send_after(None, early, False, window, TZ) == datetime(2026, 11, 26, 7, 0,
                                                                          tzinfo=TZ)
    assert domain.send_after(None, early, False, None, TZ) == early


def test_a_reminder_quiet_hours_would_hold_past_the_meeting_goes_at_once():
    """Scheduled at 23:00 for 06:30 the next morning: quiet hours (22:00-07:00) would hold
    the reminder until 07:00, after the meeting. It goes at once; one for 08:00 waits for
    07:00 as any other; a cancellation notice follows the same rule."""
    window = (time(22), time(7))
    late = datetime(2026, 11, 25, 23, 0, tzinfo=TZ)
    directory_ = directory()

    def reminders(held_at):
        scheduled = meeting(status="scheduled", held_at=held_at.isoformat(), expected=["m1"])
        return domain.plan_reminders(RULES, directory_, scheduled, held_at, late)
    [dawn] = reminders(datetime(2026, 11, 26, 6, 30, tzinfo=TZ))
    assert dawn.deadline == datetime(2026, 11, 26, 6, 30, tzinfo=TZ)
    assert domain.beats_quiet_hours(dawn, late, late, window, TZ)
    [morning] = reminders(datetime(2026, 11, 26, 8, 0, tzinfo=TZ))
    assert not domain.beats_quiet_hours(morning, late, late, window, TZ)
    assert domain.send_after(late, late, False, window, TZ) == datetime(2026, 11, 26, 7, 0,
                                                                         tzinfo=TZ)
    assert not domain.beats_quiet_hours(dawn, late, late, None, TZ)  # no quiet hours at all
    [cancelled] = domain.plan_cancellation_notices(
        directory_, meeting(meeting_id="mt1"), datetime(2026, 11, 26, 6, 30, tzinfo=TZ), ["m1"])
    assert domain.beats_quiet_hours(cancelled, late, late, window, TZ)


def test_backoff_follows_the_rules_and_repeats_the_last_pause():
    assert [domain.backoff(RULES, n) for n in (1, 2, 3, 4, 5)] == [60, 300, 1800, 7200, 7200]


def test_followups_to_each_expected_absentee_and_one_digest_with_their_names():
    drafts = domain.plan_followups(RULES, directory(), meeting(), datetime(2026, 11, 24, 11, 30,
                                   tzinfo=timezone.utc), NOW)
    by_kind = {}
    for draft in drafts:
        by_kind.setdefault(draft.kind, []).append(draft)
    # m3 has neither phone nor e-mail: in-app, and the secretary's digest (not a separate
    # relay note about the same meeting) asks to tell m3 in person
    assert [d.recipient_id for d in by_kind["absence_followup"]] == ["m1", "m3"]
    assert not [d for d in drafts if d.template == "relay"]
    [digest] = by_kind["absence_digest"]
    assert digest.recipient_id == "sec" and digest.context["absentees"] == ["张三", "王五"]
    assert digest.context["unreachable"] == ["王五"]
    assert "v9" not in [d.recipient_id for d in drafts]  # a visitor listed absent owes nothing
    assert all(d.not_before == NOW + timedelta(minutes=10) for d in drafts)


def test_unreachable_member_gets_in_app_and_the_secretary_is_told():
    drafts = domain.plan_followups(RULES, directory(), meeting(attendance=[
        {"member_id": "m3", "status": "absent", "expected": True}]),
        datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc), NOW)
    pairs = [(d.kind, d.recipient_id, d.channels, d.template) for d in drafts]
    assert ("absence_followup", "m3", ["in_app"], "absence_followup") in pairs
    assert ("absence_digest", "sec", ["email", "sms", "in_app"], "absence_digest") in pairs
    assert [d.context["unreachable"] for d in drafts if d.kind == "absence_digest"] == [["王五"]]
    assert len(drafts) == 2  # no separate relay note beside the digest


def test_one_relay_per_secretary_names_every_unreachable_member():
    """Nine members without a phone are one note to the secretary, not nine."""
    people = PEOPLE + [Contact(f"n{i}", f"无号{i}", "b1", "formal") for i in range(4)]
    scheduled = meeting(status="scheduled", held_at="2026-11-28T11:30:00+00:00",
                        expected=["m1", "m3"] + [f"n{i}" for i in range(4)])
    drafts = domain.plan_reminders(RULES, Directory(people, [COUNTY, TOWNSHIP, BRANCH]),
                                   scheduled, datetime(2026, 11, 28, 11, 30, tzinfo=timezone.utc),
                                   NOW)
    relays = [d for d in drafts if d.template == "relay"]
    assert len(relays) == 1 and relays[0].recipient_id == "sec"
    assert relays[0].context["about"].name == "王五、无号0、无号1、无号2、无号3"
    assert len([d for d in drafts if d.template == "meeting_reminder"]) == 6


def test_channels_the_deployment_lacks_are_not_planned_and_unreachability_is_not_a_choice():
    """Without an SMS gateway a phone-only member is unreachable (the secretary is told); a
    member who chose in-app only is not relayed."""
    phone_only = meeting(attendance=[{"member_id": "m2", "status": "absent", "expected": True}])
    at = datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)
    no_sms = domain.plan_followups(RULES, directory(available=("email", "in_app")), phone_only,
                                   at, NOW)
    pairs = [(d.recipient_id, d.channels, d.template) for d in no_sms]
    assert ("m2", ["in_app"], "absence_followup") in pairs
    assert ("sec", ["email", "in_app"], "absence_digest") in pairs
    assert [d.context["unreachable"] for d in no_sms if d.kind == "absence_digest"] == [["李四"]]
    chosen = domain.plan_followups(RULES, directory(preferences={"m2": Preference(("in_app",))}),
                                   phone_only, at, NOW)
    assert [d.template for d in chosen if d.kind == "absence_followup"] == ["absence_followup"]
    assert [d.context["unreachable"] for d in chosen if d.kind == "absence_digest"] == [[]]


def test_an_at_risk_streak_is_named_by_its_first_month_while_it_grows():
    """scoring lists months newest first; a grown streak at the same level is the same cause."""
    def cause(months):
        data = {"member_id": "m1", "branch_id": "b1", "level": "notice", "months": len(months),
                "months_list": [{"month": m, "meetings": []} for m in months]}
        return {d.cause for d in domain.plan_at_risk(RULES, directory(), data)}
    assert cause(["2026-09", "2026-08"]) == cause(["2026-10", "2026-09", "2026-08"]) == {
        "member_at_risk:m1:notice:2026-08"}


def test_history_raises_no_followups():
    long_ago = NOW - timedelta(days=RULES.followups_within_days + 1)
    assert domain.plan_followups(RULES, directory(), meeting(), long_ago, NOW) == []


def test_reminders_before_a_future_meeting_only():
    future = NOW + timedelta(days=3)
    scheduled = meeting(status="scheduled", attendance=[], expected=["m1", "m2"],
                        held_at=future.isoformat())
    drafts = domain.plan_reminders(RULES, directory(), scheduled, future, NOW)
    assert [(d.recipient_id, d.not_before) for d in drafts] == [
        ("m1", future - timedelta(hours=24)), ("m2", future - timedelta(hours=24))]
    assert drafts[0].cause == f"meeting:mt1@{future.isoformat()}"
    assert domain.plan_reminders(RULES, directory(), scheduled, NOW - timedelta(hours=1),
                                 NOW) == []


def test_branch_alerts_go_to_secretary_officer_and_township_robot():
    drafts = domain.plan_overdue(RULES, directory(), {
        "branch_id": "b1", "type": "branch_assembly", "period": "2026-Q3"})
    assert [(d.recipient_id, d.recipient_type, d.channels) for d in drafts] == [
        ("sec", "member", ["email", "sms", "in_app"]),
        ("officer", "member", ["email", "in_app"]),
        ("t1", "organization", ["robot", "in_app"])]
    assert all(d.urgent for d in drafts)  # overdue is urgent in the rules file
    silent = domain.plan_silent(RULES, directory(), {"branch_id": "b1", "days": 30,
                                                     "last_meeting_at": "2026-10-20"})
    assert not any(d.urgent for d in silent)


def test_a_branch_without_secretary_hears_on_its_robot_or_in_app():
    orgs = [COUNTY, TOWNSHIP, Org("b2", "西村党支部", "branch", "t1")]
    drafts = domain.plan_due_soon(RULES, Directory(PEOPLE, orgs), {
        "branch_id": "b2", "type": "lecture", "period": "2026-Q4", "due_on": "2026-12-31"})
    assert [(d.recipient_id, d.channels) for d in drafts] == [("b2", ["in_app"])]
    drafts = domain.plan_due_soon(RULES, Directory(PEOPLE, orgs, default_robot=True), {
        "branch_id": "b2", "type": "lecture", "period": "2026-Q4", "due_on": "2026-12-31"})
    assert [(d.recipient_id, d.channels) for d in drafts] == [("b2", ["robot", "in_app"])]


@pytest.mark.parametrize("level, recipients, urgent", [
    ("notice", ["m1", "sec"], False),
    ("alert", ["sec", "officer"], False),
    ("review", ["sec", "officer"], True)])
def test_at_risk_recipients_by_level(level, recipients, urgent):
    data = {"member_id": "m1", "branch_id": "b1", "months": 3, "level": level,
            "months_list": [{"month": "2026-08", "meetings": []}]}
    drafts = domain.plan_at_risk(RULES, directory(), data)
    assert [d.recipient_id for d in drafts] == recipients
    assert {d.urgent for d in drafts} == {urgent}
    assert {d.cause for d in drafts} == {f"member_at_risk:m1:{level}:2026-08"}


def test_an_at_risk_member_is_never_named_in_a_group_chat():
    """A branch without a secretary hears in-app, not on its robot, even with a default one."""
    orgs = [COUNTY, TOWNSHIP, Org("b2", "西村党支部", "branch", "t1",
                                  robot_url="https://oapi.dingtalk.com/robot/send?access_token=y")]
    people = PEOPLE + [Contact("m7", "赵六", "b2", "formal", email="z@example.cn")]
    data = {"member_id": "m7", "branch_id": "b2", "months": 3, "level": "alert",
            "months_list": [{"month": "2026-08", "meetings": []}]}
    drafts = domain.plan_at_risk(RULES, Directory(people, orgs, default_robot=True), data)
    assert [(d.recipient_id, d.channels) for d in drafts] == [
        ("b2", ["in_app"]), ("officer", ["email", "in_app"])]


def test_grade_notice_to_each_known_member_once_per_year():
    drafts = domain.plan_grades(directory(), {"year": 2026, "branch_id": "b1", "grades": [
        {"member_id": "m1", "score": 92, "grade": "excellent"},
        {"member_id": "nobody", "score": 80, "grade": "qualified"}]})
    assert [(d.recipient_id, d.cause) for d in drafts] == [("m1", "grade:2026")]


def test_a_secretary_nobody_can_reach_has_the_branch_robot_say_it_too():
    """A digest (or a relay) to a secretary with neither phone nor e-mail would be seen only
    on signing in: the branch's work-chat robot says it too; without a robot nothing more."""
    silent = Contact("sec", "王书记", "b1", "formal")  # no phone, no e-mail
    people = [silent] + PEOPLE[1:]
    with_robot = replace(BRANCH, robot_url="https://oapi.dingtalk.com/robot/send?access_token=b")
    at = datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)
    drafts = domain.plan_followups(RULES, Directory(people, [COUNTY, TOWNSHIP, with_robot]),
                                   meeting(), at, NOW)
    digests = [(d.recipient_id, d.recipient_type, d.channels) for d in drafts
               if d.kind == "absence_digest"]
    assert digests == [("sec", "member", ["in_app"]),
                       ("b1", "organization", ["robot", "in_app"])]
    # the note about the unreachable absentee m3 is in both digests, no relay beside them
    assert not [d for d in drafts if d.template == "relay"]
    assert [d.context["unreachable"] for d in drafts if d.kind == "absence_digest"] == [
        ["王五"], ["王五"]]
    no_robot = domain.plan_followups(RULES, Directory(people, [COUNTY, TOWNSHIP, BRANCH]),
                                     meeting(), at, NOW)
    assert [d.recipient_id for d in no_robot if d.kind == "absence_digest"] == ["sec"]
    # the deployment's default robot is no branch's group: it is not told
    default_only = domain.plan_followups(
        RULES, Directory(people, [COUNTY, TOWNSHIP, BRANCH], default_robot=True),
        meeting(), at, NOW)
    assert [d.recipient_id for d in default_only if d.kind == "absence_digest"] == ["sec"]


def test_one_members_own_message_never_reaches_the_group_robot():
    """A grade, or a relay of a member's own message, for a secretary nobody can reach: in-app
    for the secretary only, even with the branch's robot (the at-risk case: above)."""
    silent = Contact("sec", "王书记", "b1", "formal")  # no phone, no e-mail
    in_app_only = Contact("m1", "张三", "b1", "formal")  # unreachable too: relayed
    with_robot = replace(BRANCH, robot_url="https://oapi.dingtalk.com/robot/send?access_token=b")
    drafts = domain.plan_grades(Directory([silent, in_app_only], [COUNTY, TOWNSHIP, with_robot]),
                                {"year": 2026, "branch_id": "b1", "grades": [
                                    {"member_id": "m1", "score": 55, "grade": "unqualified"}]})
    assert drafts and not [d for d in drafts if d.recipient_type == "organization"]
    assert {d.recipient_id for d in drafts} <= {"m1", "sec"}


def test_grades_of_members_nobody_can_reach_in_a_branch_without_a_secretary():
    """Each relay carries its own member's grade (never merged into one "您…60分" for two
    people) and stays in-app for the branch: a grade is not for its group chat or the
    deployment's robot."""
    no_secretary = replace(BRANCH, secretary_id=None,
                           robot_url="https://oapi.dingtalk.com/robot/send?access_token=b")
    people = [Contact("n1", "赵一", "b1", "formal"), Contact("n2", "钱二", "b1", "formal")]
    drafts = domain.plan_grades(
        Directory(people, [COUNTY, TOWNSHIP, no_secretary], default_robot=True),
        {"year": 2026, "branch_id": "b1", "grades": [
            {"member_id": "n1", "score": 55, "grade": "unqualified"},
            {"member_id": "n2", "score": 92, "grade": "excellent"}]})
    relays = [d for d in drafts if d.template == "relay"]
    assert [(d.recipient_id, d.channels, d.about_id) for d in relays] == [
        ("b1", ["in_app"], "n1"), ("b1", ["in_app"], "n2")]
    assert [d.context["grade"]["score"] for d in relays] == [55, 92]
    assert len({d.cause for d in relays}) == 2
    own = [d for d in drafts if d.template == "grade_notice"]
    assert [(d.recipient_id, d.channels) for d in own] == [("n1", ["in_app"]), ("n2", ["in_app"])]
