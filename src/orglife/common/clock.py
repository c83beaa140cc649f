"""One injectable clock: "now" comes from here, never from datetime.now() in domain code."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider


class Clock:
    def __init__(self, tz: str = "Asia/Shanghai", fixed: str | None = None):
        self.tz = ZoneInfo(tz)
        self.fixed = parse_instant(fixed, self.tz) if fixed else None

    @classmethod
    def from_config(cls, config: dict) -> "Clock":
        """The clock of a service container: ORGLIFE_TZ and ORGLIFE_NOW from its config."""
        return cls(config.get("ORGLIFE_TZ") or "Asia/Shanghai", config.get("ORGLIFE_NOW"))

    def now(self) -> datetime:
        """Aware UTC instant."""
        return self.fixed or datetime.now(timezone.utc)

    def today(self) -> date:
        """Today in the county's time zone (days are counted there)."""
        return self.now().astimezone(self.tz).date()


class InstantOutOfRange(ValueError):
    """An instant too near datetime's own limits (year 1 or 9999) to be converted to UTC."""


def parse_instant(value: str, tz) -> datetime:
    """ISO 8601; an instant without an offset is read in the county's time zone (SPEC §2).
    Raises ValueError (InstantOutOfRange near the years 1 and 9999), never OverflowError."""
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise InstantOutOfRange(f"{value!r} is out of range") from None


class ClockProvider(DependencyProvider):
    def setup(self):
        self.clock = Clock.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.clock


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything is stored as UTC, so say so."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None
