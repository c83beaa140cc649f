"""Checks that docker-compose.yml (and the PostgreSQL init script) deploy the declared system.

docker-compose.yml cannot be run on the development machine (no Docker engine), so it is held
to the system declaration (orglife/system.py) by a test instead: every declared service runs
from the image with its own name as the command, gets its database URL if it has a database,
and that database is created; nothing runs a service that is not declared.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from .common.config import REPO_ROOT
from .common.system import System

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
INIT_SQL = REPO_ROOT / "deploy" / "postgres-init.sh"
INFRASTRUCTURE = {"rabbitmq", "postgres", "definitions", "accounts", "migrate", "cli"}


def compose_problems(system: System, compose_file: Path = COMPOSE_FILE,
                     init_sql: Path = INIT_SQL) -> list[str]:
    """What docker-compose.yml lacks for `system` (an empty list: nothing)."""
    compose = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    services = compose.get("services") or {}
    created = set(re.findall(r"^create_service_database (\w+) ",
                             init_sql.read_text(encoding="utf-8"), re.MULTILINE))
    migrate_env = (services.get("migrate") or {}).get("environment") or {}
    accounts_env = (services.get("accounts") or {}).get("environment") or {}
    definitions_env = (services.get("definitions") or {}).get("environment") or {}
    postgres_env = (services.get("postgres") or {}).get("environment") or {}
    problems = []
    for service in system.services:
        entry = services.get(service.name)
        if entry is None:
            problems.append(f"{service.name}: declared but not a service of {compose_file.name}")
            continue
        if entry.get("command") != [service.name]:
            problems.append(f"{service.name}: its command should be [{service.name!r}] (the "
                            f"image's runner), not {entry.get('command')!r}")
        environment = entry.get("environment") or {}
        replicas = (entry.get("deploy") or {}).get("replicas", 1)
        if replicas != service.instances:
            problems.append(f"{service.name}: {replicas} replicas, {service.instances} declared")
        problems += _own_credentials_only(system, service.name, environment)
        if f"ORGLIFE_{service.name.upper()}_BROKER_PASSWORD" not in accounts_env:
            problems.append(f"{service.name}: the accounts one-shot does not make its account")
        if f"ORGLIFE_{service.name.upper()}_BROKER_PASSWORD" not in definitions_env:
            problems.append(f"{service.name}: the definitions RabbitMQ loads at boot lack "
                            "its account")
        if service.database:
            variable = f"ORGLIFE_{service.name.upper()}_DB_URL"
            if variable not in environment:
                problems.append(f"{service.name}: no {variable} in its environment")
            if f"{service.name.upper()}_DB_PASSWORD" not in postgres_env:
                problems.append(f"{service.name}: postgres has no {service.name.upper()}"
                                "_DB_PASSWORD for its role")
            if variable not in migrate_env:
                problems.append(f"{service.name}: the migrate one-shot has no {variable}, so "
                                "its database would not be migrated")
            if service.name not in created:
                problems.append(f"{service.name}: {init_sql.name} does not create its database")
    for name, entry in services.items():
        if name in INFRASTRUCTURE:
            continue
        if name not in system.names:
            problems.append(f"{name}: runs in {compose_file.name} but is not declared")
    return problems


def _own_credentials_only(system: System, name: str, environment: dict) -> list[str]:
    """A service process gets its own broker account and database role, nobody else's."""
    problems = []
    uri = str(environment.get("ORGLIFE_AMQP_URI", ""))
    if not uri.startswith(f"amqp://orglife-{name}:"):
        problems.append(f"{name}: its ORGLIFE_AMQP_URI is not its own account orglife-{name}")
    db_url = str(environment.get(f"ORGLIFE_{name.upper()}_DB_URL", ""))
    if db_url and f"://{name}:" not in db_url:
        problems.append(f"{name}: its database URL is not its own role {name}")
    for other in system.names:
        if other != name and any(key.startswith(f"ORGLIFE_{other.upper()}_")
                                 for key in environment):
            problems.append(f"{name}: its environment holds {other}'s credentials")
    return problems
