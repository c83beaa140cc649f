"""registry.begin_sends and finish_sends, the sender's group steps, on SQLite and PostgreSQL:
every case ends exactly as the row-by-row begin_send and finish_send leave it (two copies of
the same situations, one taken each way, compared column by column and event by event)."""
from datetime import timedelta

from sqlalchemy import event, select, update

from orglife.common.migrate import upgrade
from orglife.common.rules import load_rules
from services.notifications import registry
from services.notifications.channels import DeliveryUnknown, PermanentFailure, TemporaryFailure
from services.notifications.models import ContactCopy, Notification, OrgCopy, backbone
from tests.conftest import LocalStore

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=groups"
# name: (recipient, recipient_type, channel, status, lease_owner)
BEGIN_CASES = {
    "email": ("m1", "member", "email", "pending", "me"),
    "sms": ("m1", "member", "sms", "pending", "me"),
    "no_contact": ("m9", "member", "sms", "pending", "me"),
    "in_app": ("m1", "member", "in_app", "pending", "me"),
    "robot": ("b1", "organization", "robot", "pending", "me"),
    "other_owner": ("m1", "member", "email", "pending", "someone-else"),
    "withdrawn": ("m1", "member", "email", "withdrawn", "me"),
}
# name: (status before, the channel's answer); every row's channels are sms, email, in_app
FINISH_CASES = {
    "delivered": ("sending", None),
    "swept": ("unknown", None),  # a verdict beats the sweep's guess
    "already_delivered": ("delivered", None),
    "temporary": ("sending", TemporaryFailure("503 busy")),
    "permanent": ("sending", PermanentFailure("400 no such number")),
    "unknown": ("sending", DeliveryUnknown("cut after sending")),
    # a retried record whose first commit went through: the row is another sender's now
    "other_sender": ("sending", None),
}
COMPARED = ("status", "channel", "channel_index", "attempts", "history", "sending_since",
            "delivered_at", "lease_owner", "lease_until", "next_attempt_at", "last_error")


def notification(key, recipient, recipient_type, channel, status, owner, now, cause):
    return Notification(
        notification_id=key, kind="absence_followup", recipient_id=recipient,
        recipient_type=recipient_type, cause=cause, channels=[channel, "email", "in_app"]
        if channel == "sms" else [channel, "in_app"], channel_index=0, channel=channel,
        subject="缺席提醒", body="请补学", status=status, attempts=0, planned_at=now,
        not_before=now, next_attempt_at=now, created_at=now, lease_owner=owner,
        lease_until=now + timedelta(minutes=5), history=[])


def fresh_store(db_url, clock):
    upgrade("notifications", db_url)
    store = LocalStore(db_url, "notifications", backbone, clock=clock)
    with store() as uow:
        uow.session.add(ContactCopy(member_id="m1", name="张三", branch_id="b1",
                                    status="full", phone="13700137001",
                                    email="m1@example.cn", version=1))
        uow.session.add(OrgCopy(org_id="b1", name="一支部", kind="branch", parent_id=None,
                                path="/b1/", robot_url=ROBOT, version=1))
        uow.commit()
    return store


def state(store, keys):
    with store.read() as uow:
        found = {row.notification_id: row for row in uow.session.scalars(
            select(Notification).where(Notification.notification_id.in_(keys)))}
        return {key[2:]: tuple(getattr(found[key], column) for column in COMPARED)
                for key in keys}


def events(store, seen):
    return [(body["event_type"], {k: v for k, v in body["data"].items()
                                  if k != "notification_id"})
            for body in store.outbox_events()[seen:]]


def test_a_group_begins_as_each_row_would(db_url, scoring_clock):
    store = fresh_store(db_url, scoring_clock)
    now = scoring_clock.now()
    with store() as uow:
        for way in ("a", "b"):
            for name, (recipient, kind, channel, status, owner) in BEGIN_CASES.items():
                uow.session.add(notification(f"{way}-{name}", recipient, kind, channel, status,
                                             owner, now, f"{way}:{name}"))
        uow.commit()
    one_by_one, grouped = {}, {}
    with store() as uow:
        for name in BEGIN_CASES:
            one_by_one[name] = registry.begin_send(uow.session, f"a-{name}", "me", now)
        uow.commit()
    with store() as uow:
        keys = [f"b-{name}" for name in BEGIN_CASES] + ["b-never-stored"]
        for sent in registry.begin_sends(uow.session, keys, "me", now):
            grouped[sent.notification_id[2:]] = sent
        uow.commit()
    assert set(grouped) == {"email", "sms", "no_contact", "in_app", "robot"}
    for name, sent in grouped.items():
        alone = one_by_one[name]
        assert (sent.channel, sent.address, sent.subject, sent.body) == (
            alone.channel, alone.address, alone.subject, alone.body), name
    assert grouped["email"].address == "m1@example.cn" and grouped["robot"].address == ROBOT
    assert grouped["no_contact"].address is None and grouped["in_app"].address is None
    a = state(store, [f"a-{name}" for name in BEGIN_CASES])
    b = state(store, [f"b-{name}" for name in BEGIN_CASES])
    assert a == b
    assert b["email"][0] == "sending" and b["withdrawn"][0] == "withdrawn"
    assert b["other_owner"][0] == "pending"
    store.engine.dispose()


def test_a_groups_answers_are_recorded_as_each_row_would(db_url, scoring_clock):
    store = fresh_store(db_url, scoring_clock)
    now = scoring_clock.now()
    later = now + timedelta(seconds=3)
    with store() as uow:
        for way in ("a", "b"):
            for name, (status, _) in FINISH_CASES.items():
                uow.session.add(notification(f"{way}-{name}", "m1", "member", "sms", "pending",
                                             "me", now, f"{way}:{name}"))
        uow.commit()
    with store() as uow:  # the states the answers arrive to
        for way in ("a", "b"):
            for name, (status, _) in FINISH_CASES.items():
                uow.session.execute(update(Notification)
                                    .where(Notification.notification_id == f"{way}-{name}")
                                    .values(status=status, sending_since=now,
                                            last_error=registry.SWEPT if name == "swept"
                                            else None,
                                            lease_owner="other" if name == "other_sender"
                                            else "me"))
        uow.commit()
    rules = load_rules()
    seen = len(store.outbox_events())
    with store() as uow:
        one_by_one = [registry.finish_send(uow, rules, f"a-{name}", later,
                                           None if failure else "ok", failure, owner="me")
                      for name, (_, failure) in FINISH_CASES.items()]
        uow.commit()
    alone_events = events(store, seen)
    seen = len(store.outbox_events())
    with store() as uow:
        answers = [(f"b-{name}", None if failure else "ok", failure)
                   for name, (_, failure) in FINISH_CASES.items()]
        grouped = registry.finish_sends(uow, rules, answers + [("b-never-stored", "ok", None)],
                                        later, owner="me")
        uow.commit()
    assert grouped == one_by_one + ["missing"]
    assert grouped[:3] == ["delivered", "delivered", "delivered"]
    assert grouped[-2] == "sending"  # another sender's attempt is left to its own answer
    history = COMPARED.index("history")
    a = state(store, [f"a-{name}" for name in FINISH_CASES])
    b = state(store, [f"b-{name}" for name in FINISH_CASES])
    assert a == b
    assert b["delivered"][history] == [{"channel": "sms", "at": a["delivered"][history][0]["at"],
                                        "outcome": "delivered", "receipt": "ok"}]
    group_events = events(store, seen)
    strip = [(kind, {k: v for k, v in data.items() if k != "cause"})
             for kind, data in alone_events]
    assert [(kind, {k: v for k, v in data.items() if k != "cause"})
            for kind, data in group_events] == strip
    assert [kind for kind, _ in group_events] == ["notification_delivered"] * 2 + [
        "notification_failed"]
    store.engine.dispose()


def test_a_lease_takes_urgent_rows_first_then_the_oldest_and_reads_no_more(db_url,
                                                                          scoring_clock):
    """lease_due on both databases: due urgent rows oldest first, then due non-urgent oldest
    first; rows not yet due, leased to another sender or not pending are left; on both the
    plan is an ordered range of ix_notification_due with no sort of every due row (a sort read
    the whole backlog at each lease: bench/county_year.py)."""
    store = fresh_store(db_url, scoring_clock)
    now = scoring_clock.now()
    # name: (urgent, minutes before now the row fell due, status, owner)
    rows = {"calm_old": (False, 30, "pending", None), "calm_new": (False, 1, "pending", None),
            "urgent_new": (True, 2, "pending", None), "urgent_old": (True, 20, "pending", None),
            "future_urgent": (True, -5, "pending", None),
            "calm_oldest_leased": (False, 90, "pending", "someone-else"),
            "delivered": (False, 100, "delivered", None), "calm_mid": (False, 10, "pending", None)}
    with store() as uow:
        for name, (urgent, ago, status, owner) in rows.items():
            row = notification(name, "m1", "member", "email", status, owner, now, name)
            row.urgent = urgent
            row.next_attempt_at = now - timedelta(minutes=ago)
            if owner is None:
                row.lease_until = None
            uow.session.add(row)
        uow.commit()
    selects = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)

    def lease(limit):
        with store() as uow:
            leased = registry.lease_due(uow.session, load_rules(), scoring_clock.tz, "me", now,
                                        limit, timedelta(minutes=5))
            uow.commit()
        return leased

    assert lease(1) == ["urgent_old"]  # the urgent alone fill the lease: no second query
    assert len(selects) == 1
    assert lease(3) == ["urgent_new", "calm_old", "calm_mid"]
    event.remove(store.engine, "before_cursor_execute", seen)
    assert lease(10) == ["calm_new"]
    assert lease(10) == []
    assert len(selects) == 3
    for statement, parameters in selects:  # the plan of each SELECT the leases ran
        with store.engine.connect() as conn:
            if db_url.startswith("sqlite"):
                plan = " ".join(str(step[-1]) for step in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters))
                assert "ix_notification_due" in plan and "TEMP B-TREE" not in plan, plan
            else:  # a table this small is scanned unless told otherwise
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = " ".join(step[0] for step in conn.exec_driver_sql(
                    "EXPLAIN " + statement, parameters))
                assert "ix_notification_due" in plan and "Sort" not in plan, plan
    store.engine.dispose()
