"""The messages' words: Jinja2 templates a county can edit without touching code.

Each `templates/<name>.txt` holds the subject on its first line and the body below it. A
county points ORGLIFE_TEMPLATES at a folder of its own; a template found there wins over the
one shipped here, so a county copies and edits only the ones it wants to change. Dates are
written in county time; codes are named in Chinese (orglife/common/vocabulary.py).
"""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import logging

import jinja2
from nameko.extensions import DependencyProvider

from orglife.common.clock import parse_instant
from orglife.common.vocabulary import LABELS

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).with_name("templates")


class TemplateError(ValueError):
    """A template that is missing or does not render (named, with the reason)."""


class Texts:
    def __init__(self, tz, folder: str | Path | None = None):
        self.tz = tz
        self.folder = folder
        self.env = self._environment([str(folder)] if folder else [])
        self.shipped = self._environment([]) if folder else self.env

    def _environment(self, folders: list[str]) -> jinja2.Environment:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(folders + [str(SHIPPED)]),
                                 undefined=jinja2.StrictUndefined, autoescape=False)
        env.filters.update(when=self._when, day=self._day, label=_label)
        return env

    def _local(self, value):
        if isinstance(value, str):
            value = parse_instant(value, self.tz) if "T" in value else date.fromisoformat(value)
        if isinstance(value, datetime):
            return value.astimezone(self.tz)
        return value

    def _when(self, value) -> str:
        moment = self._local(value)
        return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"

    def _day(self, value) -> str:
        moment = self._local(value)
        return f"{moment.year}年{moment.month}月{moment.day}日"

    def render(self, name: str, context: dict) -> tuple[str, str]:
        """(subject, body) of template `name` with `context`."""
        context = {"member": None, "org": None, "branch": None, **context}
        if name == "relay":  # the message the member could not be sent, inside a note to relay it
            inner_subject, inner_body = self.render(context["relayed"],
                                                    {**context, "member": context["about"]})
            context = {**context, "inner_subject": inner_subject, "inner_body": inner_body}
        try:
            text = self.env.get_template(f"{name}.txt").render(**context)
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template {name}.txt not found") from None
        except jinja2.TemplateError as error:
            if self.env is self.shipped:
                raise TemplateError(f"template {name}.txt: {error}") from None
            # A county's edit that breaks on some message must not hold the message back.
            log.warning("template %s.txt in %s: %s; using the shipped one", name, self.folder,
                        error)
            text = self.shipped.get_template(f"{name}.txt").render(**context)
        subject, _, body = text.strip().partition("\n")
        return subject.strip(), body.strip()

    def check(self) -> None:
        """Every template parses (at start: a county's broken edit fails loudly, not at 2 am)."""
        for path in sorted(SHIPPED.glob("*.txt")):
            try:
                self.env.get_template(path.name)
            except jinja2.TemplateError as error:
                raise TemplateError(f"template {path.name}: {error}") from None


def _label(code, domain: str) -> str:
    if code is None:
        return ""
    return LABELS.get(domain, {}).get(code, code)


class TextsProvider(DependencyProvider):
    """The service's templates, from ORGLIFE_TEMPLATES (optional) over the shipped ones."""

    def setup(self):
        from orglife.common.clock import Clock
        clock = Clock.from_config(self.container.config)
        self.texts = Texts(clock.tz, self.container.config.get("ORGLIFE_TEMPLATES"))
        self.texts.check()

    def get_dependency(self, worker_ctx):
        return self.texts
