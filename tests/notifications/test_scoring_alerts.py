"""The kinds scoring raises (due soon, overdue, silent, at risk, the year's grades) from
scoring's own daily run to a message the real local endpoints received: the real members,
meetings, scoring and notifications workers on SQLite files (conftest.py FullPipeline), the
real SMTP sink, SMS gateway and robot recorder. Each message goes once, whatever the reruns
of the daily run or the redeliveries of its events."""
from datetime import date

from tests.notifications.test_notifications_service import rows, send_due, village
from tests.scoring.conftest import attendance

NINE = [f"m{n}" for n in range(1, 10)]
B1 = "石桥村党支部"


def own_contacts(full, endpoints, own_name):
    """Addresses and a township robot no other test uses: what arrived is this test's."""
    mail = {"m1": f"{own_name}.m1@example.cn", "m9": f"{own_name}.sec@example.cn"}
    for member_id, address in mail.items():
        full.members.update_member({"member_id": member_id, "email": address})
    full.members.update_organization({"org_id": "t1",
                                      "robot_url": endpoints.robot.url_for(own_name)})
    full.deliver()
    return mail


def mails_to(endpoints, address, marker):
    return [m for m in endpoints.mails() if m.envelope_to == address and marker in m.subject]


def robot_texts(endpoints, own_name):
    path = endpoints.robot.url_for(own_name).split("//", 1)[1].split("/", 1)[1]
    return [str(r) for r in endpoints.robot.requests("/" + path.split("?")[0])]


def of_b1(rows_):
    """b1's own (b2 and b3 owe their slots too: their robots hear of them)."""
    return [n for n in rows_ if ":b1:" in n.cause]


def daily(full, clock, day):
    clock.set(day)
    full.scoring.daily_when_due()
    full.deliver()
    send_due(full, clock)


def test_due_soon_overdue_and_silent_reach_the_secretary_and_the_township_robot(
        full, scoring_clock, endpoints, own_name, notifications_store):
    village(full, own_name)  # registered 2026-11-20: committee m1–m3, group g1
    mail = own_contacts(full, endpoints, own_name)
    full.meetings.log_meeting({"meeting_id": "t11", "branch_id": "b1", "type": "theme_day",
                               "held_at": "2026-11-05T19:30:00", "topic": "主题党日",
                               "attendance": attendance(present=NINE)})
    full.deliver()

    daily(full, scoring_clock, date(2026, 11, 24))  # November ends within 7 days
    due = of_b1(rows(notifications_store, kind="due_soon"))
    assert sorted(n.status for n in due) == ["delivered", "delivered"]  # committee, group
    assert {n.recipient_id for n in due} == {"m9"}
    mails = mails_to(endpoints, mail["m9"], "【事前提醒】")
    assert len(mails) == 2
    assert all("2026年11月30日" in m.body or "11月30日" in m.body for m in mails), mails[0].body

    daily(full, scoring_clock, date(2026, 12, 1))  # November ended with both unmet
    overdue = of_b1(rows(notifications_store, kind="branch_overdue"))
    assert overdue and {n.status for n in overdue} == {"delivered"}
    assert {n.recipient_id for n in overdue} == {"m9", "t1"}  # secretary, township's robot
    assert len(mails_to(endpoints, mail["m9"], "【逾期未开】")) == 2
    robot = robot_texts(endpoints, own_name)
    assert sum("逾期未开" in text and B1 in text for text in robot) == 2

    daily(full, scoring_clock, date(2026, 12, 6))  # 30 days after the theme day
    silent = of_b1(rows(notifications_store, kind="branch_silent"))
    assert {n.status for n in silent} == {"delivered"}
    assert len(mails_to(endpoints, mail["m9"], "【长期未活动】")) == 1
    assert sum("长期未活动" in text and B1 in text
               for text in robot_texts(endpoints, own_name)) == 1

    # the daily run again, the next day's run and every event redelivered: nothing more
    sent = (len(endpoints.mails()), len(robot_texts(endpoints, own_name)),
            len(rows(notifications_store)))
    full.scoring.run_daily()
    full.deliver()
    full.replay_everything()
    daily(full, scoring_clock, date(2026, 12, 7))
    assert (len(endpoints.mails()), len(robot_texts(endpoints, own_name)),
            len(rows(notifications_store))) == sent


def test_at_risk_and_the_years_grades_reach_the_members(
        full, scoring_clock, endpoints, own_name, notifications_store):
    village(full, own_name)
    mail = own_contacts(full, endpoints, own_name)
    for month in (8, 9, 10):  # m1 is at none of them
        full.meetings.log_meeting({"meeting_id": f"t{month}", "branch_id": "b1",
                                   "type": "theme_day", "held_at": f"2026-{month:02d}-05T09:00",
                                   "topic": "主题党日", "attendance": attendance(
                                       present=NINE[1:])})
    full.deliver()  # scoring raises the notice from the meetings' events, not a timer
    send_due(full, scoring_clock)
    at_risk = rows(notifications_store, kind="member_at_risk")
    assert {(n.recipient_id, n.about_id, n.status) for n in at_risk} == {
        ("m1", None, "delivered"), ("m9", "m1", "delivered")}  # the member; about the member
    [to_member] = mails_to(endpoints, mail["m1"], "【组织生活提醒】")
    assert "连续3个月" in to_member.body and "2026-08" in to_member.body
    [to_secretary] = mails_to(endpoints, mail["m9"], "【党员")
    assert "党员1" in to_secretary.subject and "连续3个月" in to_secretary.body

    daily(full, scoring_clock, date(2027, 1, 2))  # the year closed: grades for every member
    grades = {n.recipient_id: n for n in rows(notifications_store, kind="grade_notice")}
    # b2 has no secretary: its members' grades are relayed to it one by one, in-app only
    b2 = [n for n in rows(notifications_store, kind="grade_notice") if n.recipient_id == "b2"]
    assert sorted((n.about_id, n.channels, n.status) for n in b2) == [
        ("n1", ["in_app"], "delivered"), ("n2", ["in_app"], "delivered")]
    assert sorted(grades) == ["b2"] + NINE + ["n1", "n2"]
    assert {n.status for n in grades.values()} == {"delivered"}
    assert not [r for r in endpoints.robot.requests() if "年度评定" in str(r)]
    [notice] = mails_to(endpoints, mail["m1"], "【年度评定】")
    assert "2026年度的组织生活积分为" in notice.body
    assert grades["m2"].channel == "sms"  # m2 has a phone only
    sms = [r for r in endpoints.sms.requests() if "13700137002" in str(r)
           and "年度评定" in str(r)]
    assert len(sms) >= 1
    assert grades["m3"].channel == "in_app"  # no contact at all

    before = (len(endpoints.mails()), len(rows(notifications_store)))
    full.replay_everything()
    full.scoring.run_daily()  # the same day again (Jan 3 would be b1's 90th silent day)
    daily(full, scoring_clock, date(2027, 1, 2))
    assert (len(endpoints.mails()), len(rows(notifications_store))) == before


def test_each_at_risk_level_reaches_whom_it_should(full, scoring_clock, endpoints, own_name,
                                                   notifications_store):
    """notice (3 months): the member and the secretary; alert (5): the secretary and the
    township officer; review (6): the same, urgent, flagged for the branch assembly."""
    village(full, own_name)
    mail = own_contacts(full, endpoints, own_name)
    officer = f"{own_name}.officer@example.cn"
    full.members.register_member({"member_id": "o1", "name": "组织委员", "branch_id": "b3",
                                  "joined_on": "2000-01-01", "email": officer})
    full.members.update_organization({"org_id": "t1", "secretary_id": "o1"})
    full.deliver()
    seen = {}
    for months, level in (((5, 6, 7), "notice"), ((8, 9), "alert"), ((10,), "review")):
        for month in months:  # m1 is at none of them
            full.meetings.log_meeting({
                "meeting_id": f"t{month}", "branch_id": "b1", "type": "theme_day",
                "held_at": f"2026-{month:02d}-05T09:00", "topic": "主题党日",
                "attendance": attendance(present=NINE[1:])})
        full.deliver()
        send_due(full, scoring_clock)
        fresh = [n for n in rows(notifications_store, kind="member_at_risk")
                 if n.notification_id not in seen]
        seen.update({n.notification_id: level for n in fresh})
        assert {n.status for n in fresh} == {"delivered"}, level
        assert {f":{level}:" in n.cause for n in fresh} == {True}
        reached = {n.recipient_id for n in fresh}
        if level == "notice":
            assert reached == {"m1", "m9"}
        else:
            assert reached == {"m9", "o1"}
            assert {n.urgent for n in fresh} == ({True} if level == "review" else {False})
    assert len(mails_to(endpoints, mail["m1"], "【组织生活提醒】")) == 1  # the notice only
    to_officer = mails_to(endpoints, officer, "【党员")
    assert len(to_officer) == 2
    assert any("提请审议" in m.body for m in to_officer)  # the review, for the assembly
    assert any("谈心谈话" in m.body for m in to_officer)  # the alert
    assert len(mails_to(endpoints, mail["m9"], "【党员")) == 3
