"""Broker accounts and topology for a deployment's RabbitMQ (docker-compose's one-shot
`accounts`), the same ones `orglife up` makes on its private node (SPEC §7):

- one account per declared service, `orglife-<service>`, allowed to publish only to its own
  exchange (and the parking and RPC exchanges) and to read only its own queues
  (orglife/common/topology.py `service_permissions`);
- optionally a peer account, `peer-intake`, that may only publish to `intake.events`;
- the whole topology declared with the admin account, so that no event is published before
  its consumers' queues exist (the services' own accounts may not declare them).

    python -m orglife.accounts              make the accounts (docker-compose's one-shot)
    python -m orglife.accounts --definitions FILE
                                            write the same accounts (and the exchanges) as a
                                            RabbitMQ definitions file, loaded by the node at
                                            boot (docker-compose's `definitions` one-shot), so
                                            a node whose volume was lost boots with them
    python -m orglife.accounts --new-env    print a .env for docker-compose.yml with new
                                            random passwords for every account and role

Environment: ORGLIFE_RABBITMQ_API (e.g. http://rabbitmq:15672), ORGLIFE_AMQP_URI (the admin
account's URI), ORGLIFE_<SERVICE>_BROKER_PASSWORD for every declared service, and
ORGLIFE_PEER_BROKER_PASSWORD for the peer account (optional). The RabbitMQ node may still be
starting: the API is retried for up to a minute.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import requests
from kombu import Connection

from .common.system import System, load_system
from .common.topology import (
    PEER_PERMISSIONS, declare_topology, quorum_arguments, rpc_topic_permissions,
    service_permissions,
)

WAIT_SECONDS = 60.0


class ManagementApi:
    def __init__(self, url: str, user: str, password: str):
        self.url = url.rstrip("/") + "/api"
        self.auth = (user, password)

    def call(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.url}/{path}", auth=self.auth, timeout=10,
                                    **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"RabbitMQ management API {method} /api/{path}: "
                               f"{response.status_code} {response.text.strip()[:300]}")
        return response

    def account(self, user: str, password: str, vhost: str, permissions: dict,
                topic: dict | None = None) -> None:
        """A user with `permissions` on `vhost`, and `topic` permissions on one topic
        exchange (routing keys it may bind and publish with)."""
        self.call("PUT", f"users/{quote(user, safe='')}", json={"password": password, "tags": ""})
        self.call("PUT", f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                  json=permissions)
        if topic is not None:
            self.call("PUT", f"topic-permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                      json=topic)


def provision(api: ManagementApi, admin_uri: str, system: System, passwords: dict[str, str],
              peer_password: str | None = None) -> list[str]:
    """Create or update every account; declare the topology. Returns the account names."""
    first = admin_uri.split(";")[0]  # of kombu's failover URLs `a;b;c`
    vhost = unquote(urlsplit(first).path.lstrip("/")) or "/"
    made = []
    for service in system.names:
        user = f"orglife-{service}"
        api.account(user, passwords[service], vhost, service_permissions(system, service),
                    rpc_topic_permissions(service, system.service(service).calls))
        made.append(user)
    if peer_password:
        api.account("peer-intake", peer_password, vhost, PEER_PERMISSIONS)
        made.append("peer-intake")
    if _exists(api, "guest"):  # no guest (SPEC §7)
        api.call("DELETE", "users/guest")
    with Connection(admin_uri) as conn:
        declare_topology(conn.channel(), system)
    if quorum_arguments():  # a cluster (ORGLIFE_QUORUM=1): nameko's RPC queues on every node
        from .cluster import RPC_POLICY, RPC_POLICY_DEFINITION
        api.call("PUT", f"policies/{quote(vhost, safe='')}/{RPC_POLICY}",
                 json=RPC_POLICY_DEFINITION)
    return made


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form of a password (rabbit_password_hashing_sha256): base64 of a
    4-byte salt followed by SHA-256(salt + password)."""
    import base64
    import hashlib
    import secrets
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()
                            ).decode("ascii")


def definitions(system: System, vhost: str, admin: tuple[str, str], passwords: dict[str, str],
                peer_password: str | None = None) -> dict:
    """A RabbitMQ definitions file with what `provision` makes through the API: the admin
    account, every service's least-privilege account, the peer account, their permissions,
    and the events, parking and RPC exchanges (shared, so no service account may declare
    them). No guest. Queues are left to `provision` and to the services, which declare their
    own: their arguments depend on the deployment (quorum queues need the cluster formed)."""
    from .common.topology import event_exchange, parking_exchange, rpc_exchange

    def user(name, password, tags=""):
        return {"name": name, "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags}

    def permit(name, permissions):
        return {"user": name, "vhost": vhost, **permissions}
    admin_user, admin_password = admin
    users = [user(admin_user, admin_password, "administrator")]
    permissions = [permit(admin_user, {"configure": ".*", "write": ".*", "read": ".*"})]
    topic = []
    for service in system.names:
        name = f"orglife-{service}"
        users.append(user(name, passwords[service]))
        permissions.append(permit(name, service_permissions(system, service)))
        rules = rpc_topic_permissions(service, system.service(service).calls)
        topic.append({"user": name, "vhost": vhost, **rules})
    if peer_password:
        users.append(user("peer-intake", peer_password))
        permissions.append(permit("peer-intake", PEER_PERMISSIONS))
    exchanges = [event_exchange(source) for source in system.exchanges]
    exchanges.append(rpc_exchange())
    exchanges += [parking_exchange(name) for name in sorted({s.consumer
                                                             for s in system.subscriptions})]
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topic,
        "exchanges": [{"name": e.name, "vhost": vhost, "type": e.type, "durable": e.durable,
                       "auto_delete": e.auto_delete, "internal": False, "arguments": {}}
                      for e in exchanges],
        "queues": [], "bindings": [], "policies": [], "parameters": [],
    }


def _exists(api: ManagementApi, user: str) -> bool:
    return requests.get(f"{api.url}/users/{user}", auth=api.auth, timeout=10).status_code == 200


def new_env(system: System) -> str:
    """docker-compose.yml's variables, each secret new and random (letters and digits, so
    they need no escaping in URLs)."""
    import secrets
    import string

    def secret(length: int = 24) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(length))
    names = ["ORGLIFE_SECRET", "RABBITMQ_ADMIN_PASSWORD", "POSTGRES_PASSWORD",
             "PEER_BROKER_PASSWORD",
             "RABBITMQ_ERLANG_COOKIE"]  # docker-compose.cluster.yml: the nodes' shared cookie
    for service in system.services:
        names.append(f"{service.name.upper()}_BROKER_PASSWORD")
        if service.database:
            names.append(f"{service.name.upper()}_DB_PASSWORD")
    return "".join(f"{name}={secret(43 if name == 'ORGLIFE_SECRET' else 24)}\n"
                   for name in names)


def main(argv=None) -> int:
    env = os.environ
    system = load_system(env.get("ORGLIFE_SYSTEM"))
    args = argv if argv is not None else sys.argv[1:]
    if args == ["--new-env"]:
        sys.stdout.write(new_env(system))
        return 0
    writing = len(args) == 2 and args[0] == "--definitions"
    missing = [f"ORGLIFE_{s.upper()}_BROKER_PASSWORD" for s in system.names
               if not env.get(f"ORGLIFE_{s.upper()}_BROKER_PASSWORD")]
    missing += [name for name in ("ORGLIFE_AMQP_URI",) + (() if writing else
                                                          ("ORGLIFE_RABBITMQ_API",))
                if not env.get(name)]
    if missing:
        print(f"accounts: set {', '.join(missing)}", file=sys.stderr)
        return 2
    admin = urlsplit(env["ORGLIFE_AMQP_URI"].split(";")[0])
    if writing:
        import json

        from .common.config import write_private
        vhost = unquote(admin.path.lstrip("/")) or "/"
        content = definitions(system, vhost, (unquote(admin.username or ""),
                                              unquote(admin.password or "")),
                              {s: env[f"ORGLIFE_{s.upper()}_BROKER_PASSWORD"]
                               for s in system.names},
                              env.get("ORGLIFE_PEER_BROKER_PASSWORD"))
        write_private(Path(args[1]), json.dumps(content, indent=2))
        owner = env.get("ORGLIFE_DEFINITIONS_OWNER")  # "999:999": RabbitMQ's user reads it
        if owner:
            uid, _, gid = owner.partition(":")
            os.chown(args[1], int(uid), int(gid or uid))
        print(f"accounts: definitions for {len(content['users'])} accounts written to "
              f"{args[1]}", flush=True)
        return 0
    api = ManagementApi(env["ORGLIFE_RABBITMQ_API"], unquote(admin.username or ""),
                        unquote(admin.password or ""))
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            made = provision(api, env["ORGLIFE_AMQP_URI"], system,
                             {s: env[f"ORGLIFE_{s.upper()}_BROKER_PASSWORD"]
                              for s in system.names},
                             env.get("ORGLIFE_PEER_BROKER_PASSWORD"))
            break
        except (requests.ConnectionError, OSError) as exc:
            if time.monotonic() > deadline:
                print(f"accounts: RabbitMQ did not answer: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
    print(f"accounts: {', '.join(made)} ready; topology declared", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
