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
INIT_SQL = REPO_ROOT / "deploy" / "postgres-init.sql"
INFRASTRUCTURE = {"rabbitmq", "postgres", "migrate", "cli"}


def compose_problems(system: System, compose_file: Path = COMPOSE_FILE,
                     init_sql: Path = INIT_SQL) -> list[str]:
    """What docker-compose.yml lacks for `system` (an empty list: nothing)."""
    compose = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    services = compose.get("services") or {}
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql.read_text(encoding="utf-8")))
    migrate_env = (services.get("migrate") or {}).get("environment") or {}
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
        if service.database:
            variable = f"ORGLIFE_{service.name.upper()}_DB_URL"
            if variable not in environment:
                problems.append(f"{service.name}: no {variable} in its environment")
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
