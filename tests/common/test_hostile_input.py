"""Every bad input gets a named error, never a crash (issue 7 §3, SPEC §7).

Thousands of generated hostile payloads (wrong types, missing and extra fields, 100,000-character
strings, lone surrogates and NUL characters, nested junk, out-of-range dates and numbers, ids
with '/', duplicate attendance entries, negative or huge paging) are thrown at every RPC method
of members and meetings and at meetings' intake, through the service classes as the unit tests
call them (worker_factory, real SQLite files). Each call must come back with a result or one of
the documented errors; a ValidationError names fields, each with messages; a refused call
changes no row; intake never raises, and a refused report is rejected and kept.

The regression tests below pin each cause the issue lists, one by one.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from orglife.common.envelope import Envelope
from orglife.common.errors import EXPECTED_ERRORS, NotFound, ValidationError
from tests.meetings.conftest import (  # noqa: F401 - the fixtures, used from here
    meetings_store, meetings_worker, member_event, village_branch_events,
)
from tests.members.conftest import members_store, members_worker, small_county  # noqa: F401

SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
EXAMPLES = 160  # per method and report type: 22 × 160 = 3,520 payloads in all


# -- hostile values --------------------------------------------------------------------------
def nest(depth, leaf="x"):
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


HOSTILE_STRINGS = [
    "", " ", "\t", "\x00", "a\x00b", "\ud800", "名\udfff", "\udc80x", "a/b", "/", "b1/../b2",
    "x" * 65, "x" * 100_000, "名" * 3000, "0001-01-01T00:00:00", "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59", "0001-01-01", "9999-12-31", "1921-06-30", "2026-02-30",
    "2026-11-10T19:30:00", "2026-11-10T19:30:00+25:00", "NaN", "Infinity", "true", "是",
    "null", "m1", "b1", "c1", "g1", "n1", "present", "remote", "branch_assembly",
]
CHARS = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "/", " ", "名", "\n"])
texts = st.sampled_from(HOSTILE_STRINGS) | st.text(CHARS, max_size=12)
numbers = (st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40,
                              -10**40, 1000, 1001, 10_000_000, 10_000_001]))
scalars = st.none() | st.booleans() | numbers | texts
keys = st.sampled_from(["x", "__type__", "__value__", "member_id", "\ud800", "a\x00",
                        "x" * 1000]) | st.text(CHARS, max_size=6)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(keys, inner, max_size=4), max_leaves=10)
deep = st.integers(min_value=17, max_value=2000).map(nest)
hostile = junk | deep
ids = (st.sampled_from(["m1", "m2", "b1", "b2", "t1", "c1", "g1", "ghost", "a/b", "x" * 64,
                        "x" * 65, " m1", "m1\x00", "\ud800"]) | hostile)
instants = (st.sampled_from(HOSTILE_STRINGS[13:28])
            | st.datetimes().map(lambda d: d.isoformat())
            | st.builds(lambda d, h: f"{d.isoformat()}{h}", st.datetimes(),
                        st.sampled_from(["Z", "+08:00", "-05:00", "+14:00", "-23:59"])))
days = st.sampled_from(HOSTILE_STRINGS[13:28]) | st.dates().map(lambda d: d.isoformat())
flags = st.sampled_from([True, False, 0, 1, "是", "否", "yes", [], {}, None, 2, "maybe"])
paging = {"limit": numbers | texts | hostile, "offset": numbers | texts | hostile}


@st.composite
def payload(draw, base, near):
    """`base` (a valid payload) with some fields dropped, set to a near-valid value of their
    own kind, or to junk, plus some unknown fields; now and then no object at all."""
    if draw(st.integers(0, 15)) == 0:
        return draw(hostile)
    out = dict(base)
    names = sorted(set(base) | set(near))
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        action = draw(st.sampled_from(["drop", "near", "near", "junk"]))
        if action == "drop":
            out.pop(name, None)
        elif action == "near" and name in near:
            out[name] = draw(near[name])
        else:
            out[name] = draw(hostile)
    for name in draw(st.lists(keys, max_size=2)):
        out[name] = draw(hostile)
    return out


# -- what a call may come back with ------------------------------------------------------------
def snapshot(store):
    with store.engine.connect() as conn:
        tables = conn.execute(text("select name from sqlite_master where type = 'table' "
                                   "and name not like 'sqlite_%'")).scalars().all()
        return {t: conn.execute(text(f"select * from {t} order by 1")).all() for t in tables}


def check_error(exc):
    assert isinstance(exc, EXPECTED_ERRORS), f"undocumented {type(exc).__name__}: {exc}"
    if isinstance(exc, ValidationError):
        assert isinstance(exc.errors, dict) and exc.errors, exc.errors
        for field, messages in exc.errors.items():
            assert isinstance(field, str) and field
            assert isinstance(messages, list) and messages
            assert all(isinstance(m, str) and m for m in messages)
        str(exc).encode("utf-8")  # the error itself crosses the wire


def call(store, method, argument):
    """Call; a refusal must be documented and change nothing."""
    before = snapshot(store)
    try:
        return method(argument)
    except Exception as exc:  # noqa: BLE001 - what the test is about
        check_error(exc)
        assert snapshot(store) == before, f"{method.__name__} refused but changed rows"
        return exc


# -- members -----------------------------------------------------------------------------------
MEMBER = {"name": "张伟", "branch_id": "b1", "group_id": "g1", "phone": "13800138000",
          "email": "a@example.cn", "joined_on": "2010-07-01", "mobile": False,
          "mobile_location": None, "committee_member": False, "no_vote": False,
          "status": "formal"}
MEMBER_NEAR = {"member_id": ids, "name": texts, "branch_id": ids, "group_id": ids,
               "phone": texts | numbers, "email": texts, "joined_on": days, "mobile": flags,
               "mobile_location": texts, "committee_member": flags, "no_vote": flags,
               "status": st.sampled_from(["formal", "probationary", "removed",
                                          "transferred_out", "deceased", "x"])}
ORG_NEAR = {"org_id": ids, "name": texts, "parent_id": ids,
            "kind": st.sampled_from(["county", "township", "branch", "group", "general_branch",
                                     "city"]),
            "category": st.sampled_from(["village", "community", "farm", None])}

MEMBERS_CALLS = {
    "register_organization": payload({"name": "新镇", "kind": "township", "parent_id": "c1"},
                                     ORG_NEAR),
    "get_organization": ids,
    "list_organizations": payload({"kind": "branch", "limit": 10, "offset": 0},
                                  {**paging, "kind": texts, "parent_id": ids, "under": ids,
                                   "category": texts, "q": texts}),
    "register_member": payload(MEMBER, MEMBER_NEAR),
    "get_member": ids,
    "list_members": payload({"branch_id": "b1", "limit": 10, "offset": 0},
                            {**paging, "branch_id": ids, "group_id": ids, "under": ids,
                             "status": texts, "mobile": flags, "committee_member": flags,
                             "q": texts}),
    "update_member": payload({"member_id": "m1", "name": "张伟"},
                             {**MEMBER_NEAR, "member_id": ids, "branch_id": ids}),
    "transfer_member": payload({"member_id": "m2", "to_branch_id": "b2"},
                               {"member_id": ids, "to_branch_id": ids, "to_group_id": ids}),
}


@pytest.fixture
def members_county(members_worker):
    worker = members_worker()
    small_county(worker)
    for n in range(1, 5):
        worker.register_member({**MEMBER, "member_id": f"m{n}", "name": f"党员{n}"})
    return worker


@pytest.mark.parametrize("method", sorted(MEMBERS_CALLS))
def test_members_rpc_answers_hostile_payloads(members_county, members_store, method):
    strategy = MEMBERS_CALLS[method]
    thrown = []

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(strategy)
    def throw(argument):
        thrown.append(call(members_store, getattr(members_county, method), argument))

    throw()
    assert len(thrown) >= EXAMPLES
    assert members_county.get_member("m1")["member_id"] == "m1"  # and the service goes on


IMPORT_ROW = {"name": "王芳", "branch": "石桥村党支部", "phone": "13900139000",
              "joined_on": "2015-07-01"}


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(rows=st.lists(payload(IMPORT_ROW, {**MEMBER_NEAR, "branch": texts, "group": texts}),
                     max_size=6) | hostile)
def test_import_members_reports_bad_rows_and_stores_the_good_ones(members_county,
                                                                   members_store, rows):
    outcome = call(members_store, members_county.import_members, rows)
    if isinstance(outcome, Exception):
        return
    errors = outcome["errors"]
    for error in errors:
        assert set(error) == {"row", "field", "message"}
        assert 1 <= error["row"] <= len(rows)
        assert isinstance(error["field"], str) and error["field"]
        assert isinstance(error["message"], str) and error["message"]
    refused = {error["row"] for error in errors}
    stored = len(outcome["created"]) + len(outcome["updated"]) + len(outcome["unchanged"])
    assert stored + len(refused) == len(rows)


# -- meetings ----------------------------------------------------------------------------------
ATTENDEES = ["m1", "m2", "m3", "m4", "m5", "n1", "ghost", "p1"]
entries = st.fixed_dictionaries(
    {"member_id": st.sampled_from(ATTENDEES) | ids,
     "status": st.sampled_from(["present", "leave", "absent", "late"]) | hostile},
    optional={"remote": flags | hostile, "x": hostile})
attendance = st.lists(st.sampled_from(ATTENDEES).map(
    lambda m: {"member_id": m, "status": "present"}) | entries, max_size=8) | hostile
MEETING = {"branch_id": "b1", "type": "branch_assembly", "held_at": "2026-11-10T19:30:00",
           "topic": "学习", "minutes": "纪要",
           "attendance": [{"member_id": f"m{n}", "status": "present"} for n in range(1, 6)]}
MEETING_NEAR = {"meeting_id": ids, "branch_id": ids, "group_id": ids, "held_at": instants,
                "topic": texts, "minutes": texts, "attendance": attendance,
                "type": st.sampled_from(["branch_assembly", "committee", "group", "lecture",
                                         "picnic"])}
ACTIVITY = {"member_id": "m1", "kind": "household_visit", "held_at": "2026-11-12T15:00:00+08:00",
            "household": "李大爷家", "note": "走访", "opinions": "修路"}
ACTIVITY_NEAR = {"activity_id": ids, "member_id": ids, "held_at": instants, "note": texts,
                 "household": texts, "opinions": texts,
                 "kind": st.sampled_from(["household_visit", "volunteer", "heart_talk", "x"])}
dated = {"from": days, "to": days}

MEETINGS_CALLS = {
    "schedule_meeting": payload({k: v for k, v in MEETING.items() if k != "attendance"},
                                MEETING_NEAR),
    "log_meeting": payload(MEETING, MEETING_NEAR),
    "amend_meeting": payload({"meeting_id": "mt1", "revision": 1, "topic": "更正"},
                             {**MEETING_NEAR, "meeting_id": ids, "revision": numbers | hostile}),
    "cancel_meeting": payload({"meeting_id": "mt2", "reason": "重复"},
                              {"meeting_id": ids, "reason": texts}),
    "get_meeting": ids,
    "list_meetings": payload({"branch_id": "b1", "limit": 10},
                             {**paging, **dated, "branch_id": ids, "under": ids, "type": texts,
                              "status": texts, "cancelled": flags}),
    "log_activity": payload(ACTIVITY, ACTIVITY_NEAR),
    "get_activity": ids,
    "list_activities": payload({"member_id": "m1"},
                               {**paging, **dated, "member_id": ids, "branch_id": ids,
                                "under": ids, "kind": texts}),
    "get_intake": ids,
    "list_rejected_intake": payload({"event_type": "meeting_reported"},
                                    {**paging, "event_type": texts}),
}


@pytest.fixture
def meetings_county(meetings_worker):
    worker = meetings_worker()
    for envelope in village_branch_events():
        worker.on_members_events([envelope])
    for meeting_id in ("mt1", "mt2"):
        worker.log_meeting({**MEETING, "meeting_id": meeting_id})
    return worker


@pytest.mark.parametrize("method", sorted(MEETINGS_CALLS))
def test_meetings_rpc_answers_hostile_payloads(meetings_county, meetings_store, method):
    strategy = MEETINGS_CALLS[method]
    thrown = []

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(strategy)
    def throw(argument):
        thrown.append(call(meetings_store, getattr(meetings_county, method), argument))

    throw()
    assert len(thrown) >= EXAMPLES
    assert meetings_county.get_meeting("mt1")["meeting_id"] == "mt1"


REPORTS = {"meeting_reported": payload(MEETING, MEETING_NEAR),
           "activity_reported": payload(ACTIVITY, ACTIVITY_NEAR)}
UNCHANGED_BY_REJECTION = ("meetings", "attendance", "activities", "pending_intake",
                          "intake_receipts", "member_copy", "org_copy")


@pytest.mark.parametrize("event_type", sorted(REPORTS))
def test_intake_rejects_and_keeps_hostile_reports(meetings_county, meetings_store, event_type):
    strategy = REPORTS[event_type]
    seen = {"rejected": 0}

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(strategy.filter(lambda body: isinstance(body, dict)))
    def throw(body):
        envelope = Envelope.new("intake", event_type, body)
        before = snapshot(meetings_store)
        kept_before = meetings_county.list_rejected_intake({})["total"]
        meetings_county.on_intake([envelope])  # never raises
        outcome = meetings_county.get_intake(envelope.event_id)
        assert outcome["status"] in ("accepted", "waiting", "rejected")
        if outcome["status"] == "rejected":
            seen["rejected"] += 1
            check_error(ValidationError(outcome["reasons"]))
            after = snapshot(meetings_store)
            for table in UNCHANGED_BY_REJECTION:
                assert after[table] == before[table], table
            assert meetings_county.list_rejected_intake({})["total"] == kept_before + 1

    throw()
    assert seen["rejected"] > EXAMPLES // 2
    good = Envelope.new("intake", event_type, {**(MEETING if event_type == "meeting_reported"
                                                  else ACTIVITY),
                                               **({"meeting_id": "good"}
                                                  if event_type == "meeting_reported" else {})})
    meetings_county.on_intake([good])  # the consumer goes on
    assert meetings_county.get_intake(good.event_id)["status"] == "accepted"


# -- regressions: one per cause listed in the issue --------------------------------------------
SURROGATE = "\ud800"


@pytest.fixture
def members_admin(members_worker):
    worker = members_worker()
    small_county(worker)
    return worker


@pytest.mark.parametrize("method, argument, field", [
    ("register_organization", {"name": "新" + SURROGATE, "kind": "township", "parent_id": "c1"},
     "name"),
    ("register_member", {"name": "张" + SURROGATE, "branch_id": "b1"}, "name"),
    ("register_member", {"name": "张伟", "branch_id": "b1", "mobile_location": "深\x00圳"},
     "mobile_location"),
    ("list_members", {"q": SURROGATE}, "q"),
    ("list_organizations", {"under": "c" + SURROGATE}, "under"),
    ("update_member", {"member_id": "m1", "name": "张" + SURROGATE}, "name"),
    ("transfer_member", {"member_id": SURROGATE, "to_branch_id": "b2"}, "member_id"),
])
def test_lone_surrogates_and_nul_are_named_errors_in_members(members_admin, members_store,
                                                             method, argument, field):
    members_admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    before = snapshot(members_store)
    with pytest.raises(ValidationError) as err:
        getattr(members_admin, method)(argument)
    assert field in err.value.errors
    assert snapshot(members_store) == before


def test_one_unstorable_import_row_is_a_row_error_and_the_valid_rows_are_stored(members_admin):
    outcome = members_admin.import_members([
        {"member_id": "i1", "name": "王芳", "branch_id": "b1"},
        {"member_id": "i2", "name": "李" + SURROGATE, "branch_id": "b1"},
        {"member_id": "i3", "name": "赵六", "branch_id": "b1", "email": "a\x00@x.cn"},
        {"member_id": "i4", "name": "刘七", "branch_id": "b1"},
    ])
    assert outcome["created"] == ["i1", "i4"]
    assert [(e["row"], e["field"]) for e in outcome["errors"]] == [(2, "name"), (3, "email")]
    assert members_admin.get_member("i4")["name"] == "刘七"


@pytest.mark.parametrize("filters", [{"offset": 2**63}, {"offset": 2**64}, {"offset": 10**30}])
def test_paging_out_of_range_is_a_named_error(members_admin, meetings_worker, filters):
    field = next(iter(filters))
    for method in (members_admin.list_members, members_admin.list_organizations,
                   meetings_worker().list_meetings, meetings_worker().list_activities,
                   meetings_worker().list_rejected_intake):
        with pytest.raises(ValidationError) as err:
            method(filters)
        assert field in err.value.errors


@pytest.mark.parametrize("value", [10**30, 2**63, {"x": 1}, ["m1"], None, 1.5, "a/b",
                                   "x" * 65, SURROGATE, "m1\x00"])
def test_bare_id_arguments_are_checked_as_ids(members_admin, meetings_worker, value):
    meetings = meetings_worker()
    for method, name in [(members_admin.get_member, "member_id"),
                         (members_admin.get_organization, "org_id"),
                         (meetings.get_meeting, "meeting_id"),
                         (meetings.get_activity, "activity_id"),
                         (meetings.get_intake, "event_id")]:
        with pytest.raises(ValidationError) as err:
            method(value)
        assert list(err.value.errors) == [name]
    with pytest.raises(NotFound):
        members_admin.get_member("ghost")


@pytest.fixture
def meetings_admin(meetings_worker):
    worker = meetings_worker()
    for envelope in village_branch_events():
        worker.on_members_events([envelope])
    return worker


@pytest.mark.parametrize("held_at", ["0001-01-01T00:00:00", "9999-12-31T23:59:59-05:00",
                                     "9999-12-31T23:59:59", "0001-01-01T07:59:59+08:00",
                                     "1920-12-31T23:59:59Z", "2101-01-01T00:00:00Z"])
def test_instants_out_of_range_are_named_errors(meetings_admin, meetings_store, held_at):
    before = snapshot(meetings_store)
    for method, payload_ in [(meetings_admin.log_meeting, MEETING),
                             (meetings_admin.schedule_meeting,
                              {k: v for k, v in MEETING.items() if k != "attendance"}),
                             (meetings_admin.log_activity, ACTIVITY)]:
        with pytest.raises(ValidationError) as err:
            method({**payload_, "held_at": held_at})
        assert "held_at" in err.value.errors
    assert snapshot(meetings_store) == before


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_day_filters_out_of_range_are_named_errors(meetings_admin, day):
    for name in ("from", "to"):
        with pytest.raises(ValidationError) as err:
            meetings_admin.list_meetings({name: day})
        assert name in err.value.errors
        with pytest.raises(ValidationError) as err:
            meetings_admin.list_activities({name: day})
        assert name in err.value.errors


@pytest.mark.parametrize("remote", [[], {}, [True], {"x": 1}])
def test_unhashable_remote_is_a_named_error(meetings_admin, meetings_store, remote):
    before = snapshot(meetings_store)
    attendance = [{"member_id": "m1", "status": "present"},
                  {"member_id": "m2", "status": "present", "remote": remote}]
    with pytest.raises(ValidationError) as err:
        meetings_admin.log_meeting({**MEETING, "attendance": attendance})
    assert err.value.errors == {"attendance.1.remote": ["Not a valid boolean."]}
    assert snapshot(meetings_store) == before


def test_unstorable_strings_are_named_by_their_path_in_meetings(meetings_admin, meetings_store):
    before = snapshot(meetings_store)
    attendance = [{"member_id": "m1", "status": "present"},
                  {"member_id": "m2", "status": "present"},
                  {"member_id": "m3", "status": "present"},
                  {"member_id": "m4" + SURROGATE, "status": "present"}]
    with pytest.raises(ValidationError) as err:
        meetings_admin.log_meeting({**MEETING, "topic": "a\x00", "attendance": attendance})
    assert err.value.errors == {
        "attendance.3.member_id": ["holds a character that cannot be stored "
                                   "(a lone surrogate, U+D800)"],
        "topic": ["holds a NUL character, which cannot be stored"]}
    with pytest.raises(ValidationError) as err:
        meetings_admin.cancel_meeting({"meeting_id": "mt1", "reason": SURROGATE})
    assert "reason" in err.value.errors
    with pytest.raises(ValidationError) as err:
        meetings_admin.log_activity({**ACTIVITY, "household": SURROGATE})
    assert "household" in err.value.errors
    assert snapshot(meetings_store) == before


def test_get_member_with_a_dict_is_a_named_error_not_a_database_error(members_admin):
    with pytest.raises(ValidationError) as err:
        members_admin.get_member({"x": 1})
    assert err.value.errors == {"member_id": ["must be 1 to 64 characters, without '/' or spaces"]}


def test_joined_on_before_the_party_was_founded_is_refused(members_admin, members_store):
    before = snapshot(members_store)
    for joined_on in ("0001-01-01", "1921-06-30"):
        with pytest.raises(ValidationError) as err:
            members_admin.register_member({"name": "张伟", "branch_id": "b1",
                                           "joined_on": joined_on})
        assert "joined_on" in err.value.errors
    outcome = members_admin.import_members([{"name": "张伟", "branch_id": "b1",
                                             "joined_on": "0001-01-01"}])
    assert [e["field"] for e in outcome["errors"]] == ["joined_on"]
    assert snapshot(members_store) == before
    assert members_admin.register_member({"name": "张伟", "branch_id": "b1",
                                          "joined_on": "1921-07-01"})["joined_on"] == "1921-07-01"


def test_meetings_copy_takes_a_member_with_an_old_bad_joined_on(meetings_admin):
    """Events members emitted before it checked joined_on must not stop meetings' copy."""
    meetings_admin.on_members_events([member_event("old1", joined_on="0001-01-01"),
                                      member_event("old2", joined_on="not a date")])
    meeting = meetings_admin.log_meeting({**MEETING, "meeting_id": "mo", "attendance": [
        {"member_id": "old1", "status": "present"}, {"member_id": "old2", "status": "leave"}]})
    rows = {r["member_id"]: r for r in meeting["attendance"]}
    assert rows["old1"]["status"] == "present" and rows["old1"]["expected"] is True
    assert rows["old2"]["status"] == "leave"


@pytest.mark.parametrize("body, field", [
    ({**MEETING, "topic": "学" + SURROGATE}, "topic"),
    ({**MEETING, "minutes": "a\x00"}, "minutes"),
    ({**MEETING, "held_at": "0001-01-01T00:00:00"}, "held_at"),
    ({**MEETING, "held_at": "9999-12-31T23:59:59-05:00"}, "held_at"),
    ({**MEETING, "attendance": [{"member_id": "m1", "status": "present", "remote": []}]},
     "attendance.0.remote"),
    ({**MEETING, "attendance": [{"member_id": "m1" + SURROGATE, "status": "present"}]},
     "attendance.0.member_id"),
    ({**MEETING, SURROGATE: 1}, "\\ud800"),
])
def test_intake_rejects_and_keeps_what_used_to_crash(meetings_admin, meetings_store, body,
                                                      field):
    envelope = Envelope.new("intake", "meeting_reported", body)
    meetings_admin.on_intake([envelope])
    kept = meetings_admin.get_intake(envelope.event_id)
    assert kept["status"] == "rejected" and field in kept["reasons"]
    assert [r["event_id"] for r in meetings_admin.list_rejected_intake({})["items"]] == [
        envelope.event_id]
    events = [e for e in meetings_store.outbox_events() if e["event_type"] == "intake_rejected"]
    assert len(events) == 1 and field in events[0]["data"]["reasons"]


def test_load_turns_any_unexpected_exception_into_a_validation_error_on_schema():
    import marshmallow
    from orglife.common.schemas import StrictSchema, load

    class Exploding(marshmallow.fields.Field):
        def _deserialize(self, value, attr, data, **kwargs):
            raise OverflowError("boom")

    class Payload(StrictSchema):
        value = Exploding()

    with pytest.raises(ValidationError) as err:
        load(Payload(), {"value": "13800138000"})
    assert err.value.errors == {"_schema": ["could not be read (OverflowError)"]}


def test_deep_nesting_in_a_payload_is_named_not_a_recursion_error(members_admin):
    with pytest.raises(ValidationError) as err:
        members_admin.register_member({"name": "张伟", "branch_id": "b1",
                                       "mobile_location": nest(100_000)})
    [(field, messages)] = err.value.errors.items()
    assert field.startswith("mobile_location.0.a.0.a.") and messages == ["nested too deeply"]


def test_contact_arguments_are_marked_sensitive():
    from nameko.containers import ServiceContainer
    from nameko.rpc import Rpc
    from nameko.testing.utils import get_extension
    from nameko.utils import REDACTED, get_redacted_args
    from services.members.service import MembersService
    container = ServiceContainer(MembersService, {"AMQP_URI": "memory://",
                                                  "ORGLIFE_SECRET": "x"})
    register = get_extension(container, Rpc, method_name="register_member")
    redacted = get_redacted_args(register, {"name": "张伟", "phone": "13800138000",
                                            "email": "a@b.cn"})
    assert redacted == {"member": {"name": "张伟", "phone": REDACTED, "email": REDACTED}}
    update = get_extension(container, Rpc, method_name="update_member")
    assert get_redacted_args(update, {"member_id": "m1", "phone": "13800138000"}) == {
        "changes": {"member_id": "m1", "phone": REDACTED, "email": REDACTED}}
    rows = get_extension(container, Rpc, method_name="import_members")
    assert get_redacted_args(rows, [{"phone": "13800138000"}]) == {"rows": REDACTED}
