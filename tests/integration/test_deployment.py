"""The deployment's own accounts, for real: the broker accounts docker-compose's `accounts`
one-shot makes, and the PostgreSQL roles deploy/postgres-init.sh makes (SPEC §7)."""
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from orglife.accounts import ManagementApi, new_env, provision
from orglife.compose import compose_problems
from orglife.system import SYSTEM
from tests.conftest import REPO, unique_name
from tests.integration.test_accounts import get, publish

pytestmark = pytest.mark.integration


def test_the_accounts_one_shot_makes_least_privilege_accounts_and_the_topology(rabbit):
    vhost = unique_name("deploy")
    rabbit.create_vhost(vhost)
    try:
        admin = rabbit.amqp_uri.rstrip("/") + "/" + vhost
        api = ManagementApi(rabbit.management_url, *rabbit._admin_auth)
        made = provision(api, admin, SYSTEM, {name: f"pw-{name}" for name in SYSTEM.names},
                         peer_password="pw-peer")
        assert made == [f"orglife-{name}" for name in SYSTEM.names] + ["peer-intake"]
        port = rabbit.amqp_port
        members = f"amqp://orglife-members:pw-members@127.0.0.1:{port}/{vhost}"
        peer = f"amqp://peer-intake:pw-peer@127.0.0.1:{port}/{vhost}"
        publish(members, "members.events")
        assert get(members, "meetings.events--members") is None  # declared, its own
        with pytest.raises(AccessRefused):
            publish(members, "meetings.events", "meeting_logged")
        publish(peer, "intake.events", "meeting_reported")
        with pytest.raises(AccessRefused):
            get(peer, "intake.events--meetings")
        with Connection(admin) as conn:  # the peer's report waits in meetings' queue
            _, waiting, _ = conn.channel().queue_declare("intake.events--meetings", passive=True)
        assert waiting == 1
    finally:
        rabbit.delete_vhost(vhost)


def test_a_node_booting_with_the_definitions_file_has_every_account(tmp_path):
    """docker-compose's RabbitMQ loads `python -m orglife.accounts --definitions` at boot
    (deploy/rabbitmq.conf), so a node whose volume was lost comes back with every account,
    its permissions and the shared exchanges, before anything else runs. Here: a new private
    node booting with that file and nothing else."""
    import json

    from orglife.accounts import definitions
    from orglife.broker import ADMIN_USER, PrivateBroker
    path = tmp_path / "definitions.json"

    class Booting(PrivateBroker):
        def _write_config(self, state):
            super()._write_config(state)
            with open(self.config_file, "a", encoding="utf-8") as conf:
                conf.write(f"load_definitions = {path}\n")
    node = Booting(tmp_path / "home")
    path.write_text(json.dumps(definitions(
        SYSTEM, "/", (ADMIN_USER, node._admin_password()),
        {name: f"pw-{name}" for name in SYSTEM.names}, peer_password="pw-peer")))
    node.start()
    try:
        port = node.amqp_port
        members = f"amqp://orglife-members:pw-members@127.0.0.1:{port}/"
        meetings = f"amqp://orglife-meetings:pw-meetings@127.0.0.1:{port}/"
        peer = f"amqp://peer-intake:pw-peer@127.0.0.1:{port}/"
        publish(members, "members.events")  # the exchange is there, and it may
        publish(meetings, "meetings.events", "meeting_logged")
        with pytest.raises(AccessRefused):
            publish(meetings, "members.events")
        publish(peer, "intake.events", "meeting_reported")
        with pytest.raises(AccessRefused):
            publish(peer, "members.events")
        with pytest.raises(AccessRefused):
            get(peer, "intake.events--meetings")
        with Connection(members) as conn:  # its own queue: a service declares it itself
            conn.channel().queue_declare("meetings.events--members", durable=True,
                                         arguments={"x-dead-letter-exchange":
                                                    "orglife.parked.members",
                                                    "x-dead-letter-routing-key":
                                                    "meetings.events--members"})
        assert get(members, "meetings.events--members") is None
        with pytest.raises(AccessRefused):
            publish(f"amqp://guest:guest@127.0.0.1:{port}/", "members.events")
        assert node.running()
    finally:
        node.stop()


def test_postgres_init_gives_each_service_a_role_that_reaches_only_its_database():
    from orglife.postgres import PrivateCluster
    folder = Path(tempfile.mkdtemp(prefix="orglife-pginit-"))
    cluster = PrivateCluster(folder / "data")
    cluster.start()
    try:
        env = dict(os.environ, POSTGRES_USER="postgres", POSTGRES_DB="postgres",
                   PGHOST="127.0.0.1", PGPORT=str(cluster.port),
                   **{f"{name.upper()}_DB_PASSWORD": f"pw-{name}" for name in SYSTEM.names})
        subprocess.run(["bash", str(REPO / "deploy" / "postgres-init.sh")], env=env,
                       check=True, capture_output=True, text=True)

        def connect(role, database):
            engine = create_engine(f"postgresql+psycopg2://{role}:x@127.0.0.1:{cluster.port}/"
                                   f"{database}")
            try:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT current_user")).scalar()
            finally:
                engine.dispose()
        assert connect("members", "members") == "members"
        assert connect("meetings", "meetings") == "meetings"
        with pytest.raises(OperationalError, match="permission denied"):
            connect("members", "meetings")
    finally:
        cluster.stop()


def test_a_new_env_has_a_password_for_every_variable_compose_requires():
    import re
    env = new_env(SYSTEM)
    given = dict(line.split("=", 1) for line in env.splitlines())
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))
    assert required <= set(given), required - set(given)
    assert all(re.fullmatch(r"[A-Za-z0-9]{24,}", value) for value in given.values())
    assert compose_problems(SYSTEM) == []
