"""The backbone's plain parts, without a broker: envelope, tokens and scopes, the unit of work,
the rules file, schema helpers."""
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import Column, MetaData, String, Table

from orglife.common.auth import SYSTEM as SYSTEM_PRINCIPAL
from orglife.common.auth import AuthContext, Principal, decode_token, mint_token
from orglife.common.clock import Clock
from orglife.common.db import UnitOfWork, backbone_tables, make_engine, session_factory
from orglife.common.envelope import Envelope, EnvelopeError
from orglife.common.errors import Forbidden, Unauthorized
from orglife.common.rules import RulesError, load_rules, validate
from orglife.common.schemas import flatten_messages
from orglife.common.system import DeclarationError
from orglife.system import SYSTEM
from tests.conftest import SECRET


# -- envelope -------------------------------------------------------------------------------
@pytest.mark.parametrize("body, reason", [
    (b"\xff\xfe", "not UTF-8"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"event_id": "e"}', "missing event_type"),
    (json.dumps({"event_id": "", "event_type": "x", "schema_version": True,
                 "occurred_at": "t", "source": "s", "data": []}),
     "event_id must be a non-empty string; schema_version must be an integer; data must be"),
])
def test_a_message_that_is_not_an_envelope_says_why(body, reason):
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.from_body(body)


def test_an_envelope_round_trips():
    envelope = Envelope.new("members", "member_registered", {"member_id": "m1", "name": "张伟"},
                            occurred_at=datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc))
    assert envelope.occurred_at == "2026-11-20T02:00:00Z"
    assert Envelope.from_body(envelope.to_json().encode()) == envelope
    assert "张伟" in envelope.to_json()  # UTF-8, not \\u escapes


@pytest.mark.parametrize("data", [
    {"member_id": "m1", "attendance": [{"member_id": "m2", "status": "present", "n": 1.5}]},
    {"big": 2 ** 70 + 1, "name": "张伟"},  # past 64 bits: orjson refuses, the stdlib writes it
    {"text": "lone \ud800 surrogate"},  # orjson refuses; written as before
    {"nested": {"k": [True, None, -1, 0.1, "\u0000", 9_223_372_036_854_775_807]}},
])
def test_an_envelope_is_written_and_read_as_the_standard_library_does(data):
    """orjson writes and reads envelopes (common/envelope.py); what it refuses or would read
    differently goes the standard library's way, so the text and the parsed envelope are
    json's."""
    envelope = Envelope.new("meetings", "meeting_logged", data)
    text = envelope.to_json()
    assert text == json.dumps(envelope.to_dict(), ensure_ascii=False, separators=(",", ":"))
    assert Envelope.from_body(text) == envelope
    if "surrogate" not in text:  # a lone surrogate cannot be UTF-8 bytes at all
        assert Envelope.from_body(text.encode("utf-8")) == envelope


def test_numbers_keep_their_value_and_type_through_an_envelope():
    """orjson reads an integer past 64 bits as a float: such a body is read by the standard
    library; a float with an exponent is written 1e16 rather than 1e+16, the same number."""
    data = {"big": 2 ** 70 + 1, "negative": -(2 ** 63) - 1, "floats": [1e16, 1e-05, 1e22, 0.5]}
    envelope = Envelope.new("meetings", "meeting_logged", data)
    for body in (envelope.to_json(), envelope.to_json().encode()):
        read = Envelope.from_body(body)
        assert read == envelope
        assert type(read.data["big"]) is int and type(read.data["negative"]) is int
    body = envelope.to_json().replace('"floats"', '"more_floats"').encode()
    assert Envelope.from_body(body).data["big"] == 2 ** 70 + 1


def test_a_body_orjson_refuses_is_read_by_the_standard_library():
    body = json.dumps({"event_id": "e", "event_type": "x", "schema_version": 1,
                       "occurred_at": "t", "source": "s",
                       "data": {"score": float("nan")}})
    envelope = Envelope.from_body(body.encode())  # NaN: the stdlib reads it, orjson does not
    assert envelope.data["score"] != envelope.data["score"]
    with pytest.raises(EnvelopeError, match="not a JSON object"):
        Envelope.from_body(b'"just a string"')


def test_a_body_nested_too_deeply_fails_as_it_did_with_the_standard_library():
    """The standard library stops at its recursion limit (the subscriber parks the message,
    "nested too deeply"); orjson reads 1,000 levels (it stops at 1,024): a body with that
    many brackets is never handed to it."""
    for body in (b"[" * 1000 + b"]" * 1000, "[" * 1000 + "]" * 1000,
                 b"[" * 5000 + b"]" * 5000):
        with pytest.raises(RecursionError):
            Envelope.from_body(body)


def test_an_envelope_orjson_would_convert_itself_is_refused_as_before():
    with pytest.raises(TypeError):  # a datetime is not JSON: json.dumps says so, as ever
        Envelope.new("meetings", "meeting_logged", {"at": datetime.now(timezone.utc)}).to_json()
    with pytest.raises(TypeError):  # a key that is not a string of a stdlib-unknown type
        Envelope.new("meetings", "meeting_logged", {(1, 2): "tuple key"}).to_json()


# -- tokens and scope -----------------------------------------------------------------------
def test_tokens_need_exp_and_scoped_roles_need_an_org():
    bearer = "Bearer " + mint_token(SECRET, "a", "township_admin", "t1")
    assert decode_token(SECRET, bearer) == Principal("a", "township_admin", "t1")
    no_exp = jwt.encode({"sub": "a", "role": "county_admin"}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="exp"):
        decode_token(SECRET, f"Bearer {no_exp}")
    for org_id in (None, "", 7, ["t1"]):
        claims = {"sub": "a", "role": "branch_secretary", "exp": datetime.now(timezone.utc)
                  + timedelta(hours=1)}
        if org_id is not None:
            claims["org_id"] = org_id
        token = jwt.encode(claims, SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized, match="org_id"):
            decode_token(SECRET, f"Bearer {token}")
    with pytest.raises(Unauthorized):
        decode_token(SECRET, "Bearer " + mint_token("another-secret-of-32-bytes-or-more!", "a",
                                                    "county_admin"))
    with pytest.raises(Unauthorized):
        decode_token(SECRET, None)


def test_scope_is_checked_by_one_call():
    township = Principal("a", "township_admin", "t1")
    township.check_scope(["c1", "t1", "b1"])
    with pytest.raises(Forbidden, match="branch 'b2' is outside the scope of township_admin t1"):
        township.check_scope(["c1", "t2", "b2"], "branch 'b2'")
    Principal("a", "county_admin").check_scope(["c1", "t2", "b2"])
    SYSTEM_PRINCIPAL.check_scope([])  # intake and events: the service itself
    with pytest.raises(Forbidden):
        AuthContext(SECRET, "Bearer " + mint_token(SECRET, "a", "branch_secretary", "b1")) \
            .check_scope(["c1", "t1", "b9"])


def test_scope_limits_queries_with_escaped_ids():
    table = Table("things", MetaData(), Column("path", String))
    query = Principal("a", "township_admin", "t_1").limit(table.select(), table.c.path)
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    assert "LIKE '%/t\\_1/%'" in sql
    everything = Principal("a", "county_admin").limit(table.select(), table.c.path)
    assert "WHERE" not in str(everything)


# -- unit of work ---------------------------------------------------------------------------
@pytest.fixture
def uow_factory(tmp_path):
    metadata = MetaData()
    backbone = backbone_tables(metadata)
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    metadata.create_all(engine)
    clock = Clock("Asia/Shanghai", "2026-11-20T10:00:00+08:00")
    return lambda source="members": UnitOfWork(session_factory(engine), source, backbone,
                                               system=SYSTEM, clock=clock)


def test_events_carry_the_declared_version_and_the_service_clock(uow_factory):
    with uow_factory() as uow:
        envelope = uow.emit("member_transferred", {"member_id": "m1"})
        uow.commit()
    assert envelope.schema_version == 2  # as declared in orglife/system.py
    assert envelope.occurred_at == "2026-11-20T02:00:00Z"  # ORGLIFE_NOW, not the wall clock
    with uow_factory() as uow, pytest.raises(DeclarationError, match="does not publish"):
        uow.emit("meeting_logged", {"meeting_id": "x"})  # meetings' event, not members'


def test_an_event_is_handled_once(uow_factory):
    envelope = Envelope.new("meetings", "meeting_logged", {"meeting_id": "x"})
    with uow_factory() as uow:
        assert uow.first_time(envelope) is True
        uow.commit()
    with uow_factory() as uow:
        assert uow.first_time(envelope) is False


def test_a_batch_is_recorded_once_per_event_in_its_order(uow_factory):
    """first_times: one statement for a batch; a copy within the batch (a redelivery next to
    the original) counts once, where the first copy came; events handled before drop out."""
    def event(ref):
        return Envelope.new("meetings", "meeting_logged", {"meeting_id": ref})
    a, b, c = event("a"), event("b"), event("c")
    with uow_factory() as uow:
        assert uow.first_times([c]) == [c]
        uow.commit()
    with uow_factory() as uow:
        assert uow.first_times([a, b, a, c]) == [a, b]
        uow.commit()
    with uow_factory() as uow:
        assert uow.first_times([b, a]) == [] and uow.first_times([]) == []


# -- rules ----------------------------------------------------------------------------------
def test_the_shipped_rules_file_is_valid_and_has_no_time_zone():
    rules = load_rules()
    assert "timezone" not in rules.raw
    assert rules.quorum_for("branch_assembly").needed(9) == 5


def test_a_rules_file_contradicting_the_time_zone_or_with_an_unknown_section_is_refused():
    raw = dict(load_rules().raw)
    # an older copy saying what ORGLIFE_TZ says still loads; a contradiction stops the service
    assert "timezone" not in validate({**raw, "timezone": "Asia/Shanghai"}).raw
    with pytest.raises(RulesError, match="contradicts ORGLIFE_TZ 'Asia/Urumqi'"):
        validate({**raw, "timezone": "Asia/Shanghai"}, tz="Asia/Urumqi")
    with pytest.raises(RulesError, match="unknown section 'quorom'"):
        validate({**raw, "quorom": {}})


def test_nested_validation_messages_name_each_field():
    assert flatten_messages({"attendance": {2: {"status": ["bad"]}}, "held_at": ["x"]}) == {
        "attendance.2.status": ["bad"], "held_at": ["x"]}


# -- settling messages over a lost connection ------------------------------------------------------
class LostConnectionMessage:
    """A message whose ack meets a reset socket, as after a broker kill (it used to kill the
    worker thread and with it the container)."""

    class channel:
        connection = object()

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    requeue = ack

    def reject(self, requeue=False):
        raise BrokenPipeError(32, "Broken pipe")


def test_acks_and_rejects_over_a_lost_connection_never_raise(caplog):
    from orglife.common.messaging import RawQueueConsumer
    consumer = RawQueueConsumer()
    for settle in (consumer.ack_message, consumer.requeue_message, consumer.reject_message):
        settle(LostConnectionMessage())
    assert "the broker will redeliver it" in caplog.text


@pytest.mark.parametrize("batch, unsettled, tag", [
    ([5, 6, 7], [5, 6, 7, 8, 9], 7),  # the oldest unsettled: one multiple ack
    ([6, 7], [5, 6, 7], None),  # 5 is older and unsettled: one by one
    ([5, 7], [5, 6, 7], None),  # 6 lies between, in another batch
    ([7], [7], None),  # a lone message gains nothing
    ([3, 4], [4], None),  # 3 was settled already: one by one, as before
])
def test_a_batch_is_acked_with_multiple_only_when_it_holds_every_older_unsettled_message(
        batch, unsettled, tag):
    from orglife.common.messaging import multiple_ack_tag
    assert multiple_ack_tag(batch, unsettled) == tag


def test_sqlite_connections_checkpoint_their_wal_every_10000_pages(tmp_path):
    """A larger interval than SQLite's 1,000 pages (orglife/common/db.py, _sqlite_pragmas):
    a connection that lost the setting would checkpoint ten times as often."""
    from orglife.common.db import WAL_CHECKPOINT_PAGES
    engine = make_engine(f"sqlite:///{tmp_path / 'any.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == \
                WAL_CHECKPOINT_PAGES == 10_000
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA journal_size_limit").scalar() == \
                64 * 1024 * 1024
    finally:
        engine.dispose()
