"""The system declaration (orglife/system.py) and what is derived from it, without a broker."""
import pytest

from orglife.common.system import (
    DeclarationError, Event, Peer, Service, System, check_handlers, load_system,
)
from orglife.common.topology import system_of
from orglife.compose import compose_problems
from orglife.system import SYSTEM
from tests.toy import SYSTEM as TOY_SYSTEM


def test_the_declaration_gives_queues_versions_and_classes():
    assert SYSTEM.names == ("members", "meetings", "scoring", "notifications", "dashboard")
    queues = {sub.queue_name: sub.event_types for sub in SYSTEM.subscriptions}
    assert queues["members.events--meetings"] == ("organization_registered",
                                                  "organization_updated", "member_registered",
                                                  "member_updated", "member_transferred")
    assert queues["members.events--scoring"] == queues["members.events--meetings"]
    assert queues["intake.events--meetings"] == ("meeting_reported", "activity_reported")
    assert "meetings.events--members" in queues
    assert SYSTEM.versions("members", "member_transferred") == {1, 2}
    assert SYSTEM.event("members", "member_transferred").version == 2
    assert SYSTEM.versions("members", "no_such_event") == frozenset()
    assert set(SYSTEM.exchanges) == {"members", "meetings", "scoring", "notifications",
                                    "intake"}
    assert SYSTEM.subscription("scoring", "meetings").queue_name == "meetings.events--scoring"
    for service in SYSTEM.services:
        assert service.load_class().name == service.name


def test_a_declaration_that_contradicts_itself_is_refused():
    members = Service("members", "MembersService", publishes=[Event("member_registered")])
    with pytest.raises(DeclarationError, match="declared twice"):
        System(services=[members, members])
    with pytest.raises(DeclarationError, match="does not publish"):
        System(services=[members, Service("x", "X", subscribes={"members": ("member_gone",)})])
    with pytest.raises(DeclarationError, match="not declared"):
        System(services=[Service("x", "X", subscribes={"nowhere": ("e",)})])
    with pytest.raises(DeclarationError, match="twice"):
        System(services=[], peers=[Peer("p", publishes=[Event("e"), Event("e", 2)])])


def test_a_dispatch_table_must_match_the_subscription():
    check_handlers(SYSTEM, "members", "meetings", ["meeting_logged", "meeting_amended",
                                                   "meeting_cancelled", "activity_logged"])
    with pytest.raises(DeclarationError, match="no handler for activity_logged"):
        check_handlers(SYSTEM, "members", "meetings",
                       ["meeting_logged", "meeting_amended", "meeting_cancelled"])
    with pytest.raises(DeclarationError, match="undeclared meeting_scheduled"):
        check_handlers(SYSTEM, "members", "meetings",
                       ["meeting_logged", "meeting_amended", "meeting_cancelled",
                        "activity_logged", "meeting_scheduled"])


def test_members_publish_organization_updated_and_its_copies_apply_it():
    from services.meetings import roster
    from services.scoring import replica
    assert SYSTEM.event("members", "organization_updated").version == 1
    assert roster.HANDLERS["organization_updated"] is roster.apply_organization
    assert replica.MEMBERS_HANDLERS["organization_updated"] is replica.apply_organization
    with pytest.raises(DeclarationError, match="no handler for organization_updated"):
        check_handlers(SYSTEM, "meetings", "members",
                       {k: v for k, v in roster.HANDLERS.items() if k != "organization_updated"})


def test_the_services_dispatch_tables_match_the_declaration():
    from services.meetings import intake, roster
    from services.members import participation
    from services.scoring import replica
    check_handlers(SYSTEM, "scoring", "members", replica.MEMBERS_HANDLERS)
    check_handlers(SYSTEM, "scoring", "meetings", replica.MEETINGS_HANDLERS)
    check_handlers(SYSTEM, "members", "meetings", participation.HANDLERS)
    check_handlers(SYSTEM, "meetings", "members", roster.HANDLERS)
    check_handlers(SYSTEM, "meetings", "intake", intake.HANDLERS)


def test_a_system_is_named_in_the_config_or_given_whole():
    assert load_system() is SYSTEM
    assert load_system("tests.toy:SYSTEM") is TOY_SYSTEM
    assert system_of({"ORGLIFE_SYSTEM": TOY_SYSTEM}) is TOY_SYSTEM
    assert system_of({}) is SYSTEM
    assert TOY_SYSTEM.names == SYSTEM.names + ("toy",)
    assert TOY_SYSTEM.subscription("toy", "members").queue_name == "members.events--toy"
    with pytest.raises(DeclarationError, match="no service 'nope'"):
        SYSTEM.service("nope")


def test_docker_compose_runs_every_declared_service():
    assert compose_problems(SYSTEM) == []
    assert compose_problems(TOY_SYSTEM) == [
        "toy: declared but not a service of docker-compose.yml"]
    only_members = System(services=[Service("members", "MembersService", instances=2)])
    assert compose_problems(only_members) == [
        f"{name}: runs in docker-compose.yml but is not declared"
        for name in SYSTEM.names if name != "members"]


def test_docker_compose_check_names_a_missing_database_and_shared_credentials(tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("""
services:
  accounts: {environment: {ORGLIFE_MEMBERS_BROKER_PASSWORD: x}}
  definitions: {environment: {ORGLIFE_MEMBERS_BROKER_PASSWORD: x}}
  postgres: {environment: {MEMBERS_DB_PASSWORD: x}}
  migrate: {environment: {ORGLIFE_MEMBERS_DB_URL: x}}
  members:
    command: [members]
    deploy: {replicas: 2}
    environment:
      ORGLIFE_AMQP_URI: amqp://orglife-members:pw@rabbitmq:5672/
      ORGLIFE_MEMBERS_DB_URL: postgresql+psycopg2://members:pw@postgres:5432/members
      ORGLIFE_MEETINGS_DB_URL: postgresql+psycopg2://meetings:pw@postgres:5432/meetings
  meetings:
    command: [meetings]
    deploy: {replicas: 3}
    environment: {ORGLIFE_AMQP_URI: "amqp://orglife:pw@rabbitmq:5672/"}
""")
    init = tmp_path / "init.sh"
    init.write_text("create_service_database members \"$MEMBERS_DB_PASSWORD\"\n")
    two = System(services=[SYSTEM.service("members"), SYSTEM.service("meetings")],
                 peers=SYSTEM.peers)
    problems = compose_problems(two, compose, init)
    assert problems == [
        "members: its environment holds meetings's credentials",
        "meetings: 3 replicas, 1 declared",
        "meetings: its ORGLIFE_AMQP_URI is not its own account orglife-meetings",
        "meetings: the accounts one-shot does not make its account",
        "meetings: the definitions RabbitMQ loads at boot lack its account",
        "meetings: no ORGLIFE_MEETINGS_DB_URL in its environment",
        "meetings: postgres has no MEETINGS_DB_PASSWORD for its role",
        "meetings: the migrate one-shot has no ORGLIFE_MEETINGS_DB_URL, so its database "
        "would not be migrated",
        "meetings: init.sh does not create its database",
    ]


def test_a_service_class_must_consume_every_declared_source_under_its_declared_name():
    from orglife.common.system import check_class
    from services.meetings.service import MeetingsService
    meetings = SYSTEM.service("meetings")
    check_class(meetings, MeetingsService)

    class Forgetful(MeetingsService):
        on_intake = None  # no consumer of intake any more
    with pytest.raises(DeclarationError, match="no consumer of intake"):
        check_class(meetings, Forgetful)

    class Misnamed(MeetingsService):
        name = "meeting"
    with pytest.raises(DeclarationError, match="named 'meeting'"):
        check_class(meetings, Misnamed)
    with pytest.raises(DeclarationError, match="consumes undeclared intake"):
        check_class(Service("meetings", "X", subscribes={"members": ("member_registered",)},
                            package="services.meetings"), Forgetful.__mro__[1])


def test_service_names_fit_environment_variables_and_queues():
    with pytest.raises(DeclarationError, match="lowercase letters and digits"):
        System(services=[Service("intake_bridge", "X")])
    with pytest.raises(DeclarationError, match="not callable"):
        check_handlers(SYSTEM, "members", "meetings", dict.fromkeys(
            ["meeting_logged", "meeting_amended", "meeting_cancelled", "activity_logged"]))


def test_the_dashboard_is_declared_without_a_database_or_events_and_calls_the_others():
    """A service that only reads others over RPC: nothing to migrate, no exchange, no queue
    of events; its broker account may call the services it names and keep reply queues."""
    import re

    from orglife.common.topology import rpc_topic_permissions, service_permissions
    from services.dashboard.service import CALLS
    dashboard = SYSTEM.service("dashboard")
    assert (dashboard.database, dashboard.publishes, dict(dashboard.subscribes)) == (
        False, (), {})
    assert dashboard.calls == CALLS == ("members", "meetings", "scoring", "notifications")
    assert "dashboard" not in SYSTEM.exchanges
    assert not [sub for sub in SYSTEM.subscriptions if sub.consumer == "dashboard"]
    with pytest.raises(DeclarationError, match="calls 'nowhere'"):
        System(services=[Service("x", "X", calls=("nowhere",))])
    with pytest.raises(DeclarationError, match="calls 'x'"):
        System(services=[Service("x", "X", calls=("x",))])

    reply = "rpc.reply-dashboard-0b8e5a6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
    allowed = service_permissions(SYSTEM, "dashboard")
    for kind in ("configure", "write", "read"):
        assert re.match(allowed[kind], reply), kind
        assert re.match(allowed[kind], "rpc-dashboard"), kind
        assert not re.match(allowed[kind], "rpc.reply-members-0b8e5a6c-1d2e-4f5a-8b9c-"
                                           "0d1e2f3a4b5c"), kind
        assert not re.match(allowed[kind], "members.events--meetings"), kind
    topic = rpc_topic_permissions("dashboard", dashboard.calls)
    for key in ("members.get_member", "scoring.branch_overview", "0b8e5a6c-1d2e-4f5a-8b9c-"
                                                                 "0d1e2f3a4b5c"):
        assert re.search(topic["write"], key), key
    assert not re.search(topic["write"], "dashboard.health")
    assert not re.search(topic["write"], "toy.anything")
    assert re.search(topic["read"], "0b8e5a6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c")
    assert re.search(topic["read"], "dashboard.health")
    assert not re.search(topic["read"], "members.get_member")  # nobody else's requests
    # a service that calls nobody keeps exactly the rights it had
    assert rpc_topic_permissions("members") == rpc_topic_permissions("members", ())
    assert "reply" not in service_permissions(SYSTEM, "members")["configure"]
