"""The sender's loop (NotificationsService._deliver) when something breaks with sends in
flight: every answer received is recorded, and a send that dies without answering neither
hangs the sender nor leaves its row `sending`. Real SQLite files and real local endpoints
(tests/notifications/conftest.py); only the breakage is injected."""
import eventlet
import pytest

from services.notifications import registry
from tests.notifications.test_notifications_service import (
    assembly, rows, send_due, village,
)


def three_absent(full, own_name):
    """Follow-ups to m1 (e-mail), m2 (SMS) and m3 (in-app), due after the grace."""
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m4", "m5", "m6", "m7", "m8", "m9"],
                                       absent=["m1", "m2", "m3"]))
    full.deliver()


def statuses(store):
    return sorted(row.status for row in rows(store, kind="absence_followup"))


def test_a_lease_failing_while_sends_are_in_flight_loses_no_answer(
        full, scoring_clock, own_name, notifications_store, monkeypatch):
    three_absent(full, own_name)
    sender = full.notifications.sender
    monkeypatch.setattr(sender, "BATCH", 1)  # one row per lease: the second comes mid-flight
    leased = []
    real_lease = registry.lease_due

    def lease_due(*args, **kwargs):
        if leased:
            raise RuntimeError("the database went away")
        leased.extend(real_lease(*args, **kwargs))
        return leased

    monkeypatch.setattr(registry, "lease_due", lease_due)
    send_due(full, scoring_clock, minutes=11)
    [first] = rows(notifications_store, notification_id=leased[0])
    assert first.status == "delivered"  # its answer came after the failed lease: recorded
    assert "sending" not in statuses(notifications_store)
    monkeypatch.setattr(registry, "lease_due", real_lease)
    send_due(full, scoring_clock)
    assert statuses(notifications_store) == ["delivered"] * 3


class Stopped(BaseException):
    """What no `except Exception` catches (as eventlet.Timeout or GreenletExit)."""


def test_a_send_that_dies_without_answering_ends_unknown_and_the_sender_goes_on(
        full, scoring_clock, own_name, notifications_store, monkeypatch):
    three_absent(full, own_name)
    sms = full.notifications.sender.channels["sms"]

    def dies(*args):
        raise Stopped()

    monkeypatch.setattr(sms, "send", dies)
    with eventlet.Timeout(20, Exception("the sender hung")):
        send_due(full, scoring_clock, minutes=11)
    [m2] = rows(notifications_store, kind="absence_followup", recipient_id="m2")
    assert m2.status == "unknown" and m2.channel == "sms"  # may have gone: never repeated
    assert statuses(notifications_store) == ["delivered", "delivered", "unknown"]


def test_a_group_whose_recording_fails_is_recorded_on_the_last_try(
        full, scoring_clock, own_name, notifications_store, monkeypatch):
    three_absent(full, own_name)
    real_finish = registry.finish_sends
    failures = []

    def finish_sends(*args, **kwargs):
        if len(failures) < 5:  # every retry of the loop's own record fails
            failures.append(1)
            raise ConnectionError("the database is restarting")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(registry, "finish_sends", finish_sends)
    with pytest.raises(ConnectionError):
        send_due(full, scoring_clock, minutes=11)
    assert len(failures) == 5
    # the answers were received: the last try records them instead of leaving them `unknown`
    assert statuses(notifications_store) == ["delivered"] * 3
