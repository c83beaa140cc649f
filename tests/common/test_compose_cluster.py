"""docker-compose.cluster.yml (the province overlay) against the system declaration: three
RabbitMQ nodes sharing one cookie and the peer-discovery config, and every declared service
(and the accounts one-shot, which declares the topology) on quorum queues with every node's
address as failover URLs, each still with only its own broker account (SPEC §7)."""
import re

import yaml

from orglife.common.config import REPO_ROOT
from orglife.system import SYSTEM

OVERLAY = REPO_ROOT / "docker-compose.cluster.yml"
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")


def test_the_cluster_overlay_gives_every_service_quorum_queues_and_every_node():
    services = yaml.safe_load(OVERLAY.read_text(encoding="utf-8"))["services"]
    conf = (REPO_ROOT / "deploy" / "rabbitmq-cluster.conf").read_text()
    for node in NODES:
        assert f"rabbit@{node}" in conf
        entry = services[node]
        assert "RABBITMQ_ERLANG_COOKIE" in entry["environment"]
        assert any("20-cluster.conf" in volume for volume in entry["volumes"])
    for name in [*SYSTEM.names, "accounts"]:
        env = services[name]["environment"]
        assert env["ORGLIFE_QUORUM"] == "1", name
        uris = env["ORGLIFE_AMQP_URI"].split(";")
        assert [re.search(r"@([\w-]+):5672/", uri).group(1) for uri in uris] == list(NODES)
        account = "orglife-admin" if name == "accounts" else f"orglife-{name}"
        assert all(uri.startswith(f"amqp://{account}:") for uri in uris), name
