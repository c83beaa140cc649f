"""Jinja2 for the dashboard's pages: autoescaped (every value from a service is text, never
markup), strict about undefined names (a typo in a template fails its test, not silently)."""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import present

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html"], default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=present.pct, num=present.num, zh=present.zh,
                       period=present.period_zh)
    env.globals.update(Link=present.Link, Badge=present.Badge, Ratio=present.Ratio,
                       org_url=present.org_url, branch_url=present.branch_url,
                       member_url=present.member_url, roles=present.ROLE_NAMES,
                       isinstance=isinstance)
    return env


ENV = make_environment()


def render(name: str, **context) -> str:
    return ENV.get_template(name).render(**context)
