"""Configuration from the environment (SPEC §5), in one place.

Every process (CLI, stack launcher, service runner, tests) builds a `Settings` from the
environment; services receive it as their nameko config dict, so tests can hand a container a
config of their own without touching `os.environ`.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TZ = "Asia/Shanghai"
REPO_ROOT = Path(__file__).resolve().parents[3]  # the checkout (tests, `orglife test`)
DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules.yaml"  # shipped with the package


@dataclass
class Settings:
    home: Path
    amqp_uri: str | None = None  # None: use (or start) the private node under `home`
    secret: str = ""
    rules_path: Path = DEFAULT_RULES
    tz: str = DEFAULT_TZ
    db_urls: dict[str, str] = field(default_factory=dict)
    # ORGLIFE_<SERVICE>_AMQP_URI: a service's own broker account (SPEC §7); `up` sets these
    # for the private node, a deployment sets them for its broker.
    service_amqp_uris: dict[str, str] = field(default_factory=dict)
    smtp_url: str | None = None
    sms_url: str | None = None
    webhook_url: str | None = None
    robot_hosts: str | None = None
    mail_from: str | None = None  # ORGLIFE_MAIL_FROM: the From of notification e-mails
    templates: str | None = None  # ORGLIFE_TEMPLATES: a county's own notification templates
    token: str | None = None
    now: str | None = None  # fixed "now" (ISO 8601) for demos, tests and benchmarks
    relay_mode: str = "inline"  # inline: a greenthread of the service; process: a process of its own
    system: str | None = None  # ORGLIFE_SYSTEM: "module:attribute" of another system declaration

    def db_url(self, service: str) -> str:
        return self.db_urls.get(service) or f"sqlite:///{self.home / 'db' / f'{service}.db'}"

    def nameko_config(self, service: str, amqp_uri: str | None = None) -> dict:
        """The config dict a service container is started with."""
        uri = amqp_uri or self.service_amqp_uris.get(service) or self.amqp_uri
        if not uri:
            raise RuntimeError("no AMQP URI: start the broker first (orglife up)")
        return {
            "AMQP_URI": uri,
            "SERVICE_NAME": service,
            "DB_URL": self.db_url(service),
            "ORGLIFE_HOME": str(self.home),
            "ORGLIFE_SECRET": self.secret,
            "ORGLIFE_RULES": str(self.rules_path),
            "ORGLIFE_TZ": self.tz,
            "ORGLIFE_NOW": self.now,
            "ORGLIFE_SMTP_URL": self.smtp_url,
            "ORGLIFE_SMS_URL": self.sms_url,
            "ORGLIFE_WEBHOOK_URL": self.webhook_url,
            "ORGLIFE_ROBOT_HOSTS": self.robot_hosts,
            "ORGLIFE_MAIL_FROM": self.mail_from,
            "ORGLIFE_TEMPLATES": self.templates,
            "ORGLIFE_RELAY": self.relay_mode,
            "ORGLIFE_SYSTEM": self.system,
            # nameko's own default heartbeat (60 s) is fine; prefetch follows max_workers.
            "max_workers": 10,
        }


def _secret_for(home: Path, env: dict) -> str:
    """ORGLIFE_SECRET, or a random one kept in the home folder so the CLI and services agree."""
    if env.get("ORGLIFE_SECRET"):
        return env["ORGLIFE_SECRET"]
    path = home / "secret"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    write_private(path, value)
    return value


def write_private(path: Path, text: str) -> None:
    """Write a secret: the file is created 0600 (never readable by others, not even for an
    instant between a write and a chmod) and replaces `path` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover tmp file of another mode is corrected before writing
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_settings(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("ORGLIFE_HOME") or ".orglife").expanduser().resolve()
    db_urls = _per_service(env, "DB_URL")
    service_amqp_uris = _per_service(env, "AMQP_URI")
    return Settings(
        home=home,
        service_amqp_uris=service_amqp_uris,
        amqp_uri=env.get("ORGLIFE_AMQP_URI") or None,
        secret=_secret_for(home, env),
        rules_path=Path(env.get("ORGLIFE_RULES") or DEFAULT_RULES),
        tz=env.get("ORGLIFE_TZ") or DEFAULT_TZ,
        db_urls=db_urls,
        smtp_url=env.get("ORGLIFE_SMTP_URL"),
        sms_url=env.get("ORGLIFE_SMS_URL"),
        webhook_url=env.get("ORGLIFE_WEBHOOK_URL"),
        robot_hosts=env.get("ORGLIFE_ROBOT_HOSTS") or None,
        mail_from=env.get("ORGLIFE_MAIL_FROM") or None,
        templates=env.get("ORGLIFE_TEMPLATES") or None,
        token=env.get("ORGLIFE_TOKEN"),
        now=env.get("ORGLIFE_NOW"),
        relay_mode=_relay_mode(env.get("ORGLIFE_RELAY") or "inline"),
        system=env.get("ORGLIFE_SYSTEM") or None,
    )


def _per_service(env: dict, suffix: str) -> dict[str, str]:
    """ORGLIFE_<SERVICE>_<suffix> variables by service name (any declared service)."""
    pattern = re.compile(rf"^ORGLIFE_([A-Z0-9]+)_{suffix}$")
    return {match.group(1).lower(): value for key, value in env.items()
            if value and (match := pattern.match(key))}


def _relay_mode(value: str) -> str:
    if value not in ("inline", "process"):
        raise ValueError(f"ORGLIFE_RELAY must be inline or process, not {value!r}")
    return value
