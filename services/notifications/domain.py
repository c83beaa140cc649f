"""Who is told what, when, and on which channels (SPEC §3 notification defaults, §4 kinds).

Plain functions, no framework: each planner turns one event's data into `Draft`s, given a
`Directory` to look up members, organizations and preferences. registry.py stores the drafts
(exactly one per kind, recipient and cause) and delivery.py sends them.

Causes name the fact a message answers, not the event that carried it, so that a duplicate
event, a redelivery or an amendment repeating the same absence finds the notification already
there: `meeting:<id>` (follow-ups, digest), `meeting:<id>@<held_at>` (a reminder; a moved
meeting is a new cause), `branch_overdue:<branch>:<type>:<period>:<group>`, and so on.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Protocol

from orglife.common.rules import Rules

MEMBER_CHANNELS = ("email", "sms", "in_app")
KINDS = ("meeting_reminder", "absence_followup", "absence_digest", "due_soon", "branch_overdue",
         "branch_silent", "member_at_risk", "grade_notice")
# about one member (their grade, their streak): never for a group chat
PERSONAL_KINDS = ("member_at_risk", "grade_notice")
STATUSES = ("pending", "sending", "delivered", "failed", "unknown", "withdrawn")
OPEN_STATUSES = ("pending",)  # what a withdrawal or an update may still change
DEFAULT = "default"  # a recipient without quiet hours of their own follows the rules file's


@dataclass(frozen=True)
class Contact:
    member_id: str
    name: str
    branch_id: str
    status: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Org:
    org_id: str
    name: str
    kind: str
    parent_id: str | None = None
    secretary_id: str | None = None
    robot_url: str | None = None


@dataclass(frozen=True)
class Preference:
    channels: tuple[str, ...] | None = None  # None: the default order
    quiet_hours: tuple[time, time] | None = None
    quiet_set: bool = False  # the member chose their quiet hours (None then means "none")


class Directory(Protocol):
    """What the planners look up (registry.SessionDirectory reads notifications' own copy)."""

    def contact(self, member_id: str) -> Contact | None: ...
    def org(self, org_id: str) -> Org | None: ...
    def preference(self, member_id: str) -> Preference: ...
    def default_robot(self) -> bool: ...
    def available(self) -> tuple[str, ...]: ...  # member channels this deployment has


@dataclass
class Draft:
    """One notification to store: to whom, why, on which channels, and what to say."""

    kind: str
    recipient_id: str
    recipient_type: str  # member | organization
    cause: str
    channels: list[str]
    template: str  # the template's name (templates/<name>.txt)
    context: dict = field(default_factory=dict)
    urgent: bool = False
    not_before: datetime | None = None  # None: as soon as quiet hours allow
    ref: str | None = None  # the meeting or branch it is about (withdrawals look it up)
    about_id: str | None = None  # the member it is about, when the recipient is someone else
    quiet_hours: object = DEFAULT  # (start, end), None (none at all), or DEFAULT
    # the moment it stops being of use (a reminder: the meeting's start): quiet hours never
    # push it past that (see `send_after`)
    deadline: datetime | None = None


# -- channels and quiet hours ---------------------------------------------------------------------
def member_channels_of(configured) -> tuple[str, ...]:
    """The member channels among a deployment's configured ones, in the default order."""
    return tuple(name for name in MEMBER_CHANNELS if name in configured)


def reachable_channels(contact: Contact, available=MEMBER_CHANNELS) -> set[str]:
    """Where a member can be reached: e-mail and SMS only when both the address is known and
    the deployment has the channel (an SMS to nowhere is not a channel); in-app always."""
    known = {"email": contact.email, "sms": contact.phone}
    return {"in_app"} | {channel for channel, address in known.items()
                         if address and channel in available}


def member_channels(contact: Contact, preference: Preference,
                    available=MEMBER_CHANNELS) -> list[str]:
    """The member's order (theirs, or email if known, then sms if a phone is known), keeping
    only channels they can be reached on; in-app is always the last fallback."""
    order = preference.channels or MEMBER_CHANNELS
    reachable = reachable_channels(contact, available)
    chosen = [channel for channel in order if channel in reachable]
    if "in_app" not in chosen:
        chosen.append("in_app")
    return chosen


def org_channels(org: Org, default_robot: bool) -> list[str]:
    return ["robot", "in_app"] if org.robot_url or default_robot else ["in_app"]


def unreachable(contact: Contact, available=MEMBER_CHANNELS) -> bool:
    """No channel but in-app for lack of an address (a member who chose in-app only is not
    relayed: that was their choice)."""
    return reachable_channels(contact, available) == {"in_app"}


def in_quiet_hours(local: time, window: tuple[time, time] | None) -> bool:
    if window is None:
        return False
    start, end = window
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight


def quiet_until(moment: datetime, window: tuple[time, time] | None, tz) -> datetime | None:
    """When the quiet window holding `moment` ends (an aware instant), or None if `moment` is
    not in quiet hours."""
    local = moment.astimezone(tz)
    if not in_quiet_hours(local.time(), window):
        return None
    end = local.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(moment.tzinfo)


def send_after(not_before: datetime | None, now: datetime, urgent: bool,
               window: tuple[time, time] | None, tz) -> datetime:
    """The earliest instant a message may go out: its own time, then past quiet hours unless
    urgent (deferred, never dropped)."""
    at = max(not_before or now, now)
    if urgent:
        return at
    return quiet_until(at, window, tz) or at


def beats_quiet_hours(draft: Draft, not_before: datetime | None, now: datetime,
                      window: tuple[time, time] | None, tz) -> bool:
    """Quiet hours would hold this message until its deadline had passed (a reminder of a
    06:30 meeting planned at 23:00 would go at 07:00): it goes at once instead, as urgent
    ones do; a reminder after the meeting would be no reminder at all."""
    if draft.urgent:
        return False
    return holds_past(send_after(not_before, now, False, window, tz), draft.deadline, now)


def holds_past(at: datetime, deadline: datetime | None, now: datetime) -> bool:
    """Waiting for quiet hours to end (until `at`) would reach the message's deadline, still
    ahead: it goes at once instead. One whose deadline has passed already (a retry backed
    off past the meeting) is no use at any hour and wakes nobody: it waits as any other.
    Asked at planning (beats_quiet_hours), when a member's quiet hours change
    (registry.set_preferences) and when a sender finds it inside them (lease_due)."""
    return deadline is not None and now < deadline <= at


def backoff(rules: Rules, attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones on a channel (the last
    pause repeats if attempts outnumber the pauses)."""
    pauses = rules.backoff_seconds or (60.0,)
    return pauses[min(attempts, len(pauses)) - 1]


# -- recipients -----------------------------------------------------------------------------------
def _member_draft(directory: Directory, member_id: str, kind: str, cause: str, template: str,
                  context: dict, **extra) -> list[Draft]:
    """A draft to a member and, when the member has no channel but in-app, one telling the
    branch secretary (a member nobody can reach must not be forgotten)."""
    contact = directory.contact(member_id)
    if contact is None:
        return []
    preference = directory.preference(member_id)
    channels = member_channels(contact, preference, directory.available())
    context = {**context, "member": contact}
    drafts = [Draft(kind, member_id, "member", cause, channels, template, context,
                    quiet_hours=preference.quiet_hours if preference.quiet_set else DEFAULT,
                    **extra)]
    if unreachable(contact, directory.available()):
        for relay in _secretary_drafts(directory, contact.branch_id, kind,
                                       f"{cause}|relay:{member_id}", "relay",
                                       {**context, "relayed": template, "about": contact},
                                       exclude=member_id, **{**extra, "about_id": member_id}):
            drafts.append(relay)
    return drafts


def _org_draft(directory: Directory, org: Org, kind: str, cause: str, template: str,
               context: dict, **extra) -> Draft:
    return Draft(kind, org.org_id, "organization", cause,
                 org_channels(org, directory.default_robot()), template,
                 {**context, "org": org}, **extra)


def _secretary_drafts(directory: Directory, org_id: str, kind: str, cause: str, template: str,
                      context: dict, exclude: str | None = None, **extra) -> list[Draft]:
    """To the organization's secretary (or officer); an organization without one, or whose
    secretary is the member concerned, is told on its robot or in-app instead (in-app only
    for a grade or an at-risk streak: PERSONAL_KINDS)."""
    org = directory.org(org_id)
    if org is None:
        return []
    if org.secretary_id and org.secretary_id != exclude:
        contact = directory.contact(org.secretary_id)
        if contact is not None:
            preference = directory.preference(contact.member_id)
            drafts = [Draft(kind, contact.member_id, "member", cause,
                            member_channels(contact, preference, directory.available()),
                            template, {**context, "member": contact, "org": org},
                            quiet_hours=(preference.quiet_hours if preference.quiet_set
                                         else DEFAULT), **extra)]
            if (unreachable(contact, directory.available()) and org.robot_url
                    and kind not in PERSONAL_KINDS and template != "relay"):
                # a secretary with neither phone nor e-mail would see it only on signing
                # in: the organization's own work-chat robot says it too (never the
                # deployment's default robot, and never one member's own message)
                drafts.append(_org_draft(directory, org, kind, cause, template, context,
                                         **extra))
            return drafts
    told = _org_draft(directory, org, kind, cause, template, context, **extra)
    if kind in PERSONAL_KINDS:
        # one member's grade or streak is not for a group chat: an organization without a
        # secretary to tell keeps it in-app (its admins list it), never on a robot
        told = replace(told, channels=["in_app"])
    return [told]


def _township_of(directory: Directory, branch: Org) -> Org | None:
    parent = directory.org(branch.parent_id) if branch.parent_id else None
    while parent is not None and parent.kind not in ("township", "county"):
        parent = directory.org(parent.parent_id) if parent.parent_id else None
    return parent


def _merge_relays(drafts: list[Draft]) -> list[Draft]:
    """One note per secretary and fact naming every member who can only be reached in-app (a
    reminder to nine members without a phone is one message to the secretary, not nine); a
    personal message (a grade) is relayed member by member, since each says something else.
    Its cause is the fact's plus `|relay`; it is about no single member, so an amendment
    withdraws it and the refreshed plan brings it back with the names as they now are."""
    out: list[Draft] = []
    merged: dict[tuple, Draft] = {}
    for draft in drafts:
        if draft.template != "relay" or draft.kind in PERSONAL_KINDS:
            out.append(draft)  # a grade is each member's own: never merged into another's
            continue
        fact = draft.cause.split("|relay:")[0]
        key = (draft.kind, draft.recipient_id, fact)
        if key not in merged:
            merged[key] = replace(draft, cause=f"{fact}|relay", about_id=None,
                                  context={**draft.context, "abouts": []})
            out.append(merged[key])
        merged[key].context["abouts"].append(draft.context["about"])
    for draft in merged.values():
        abouts = draft.context["abouts"]
        first = abouts[0]
        # the inner message greets them all by name ("张三、李四："), as the secretary reads it
        draft.context["about"] = replace(first, member_id="",
                                         name="、".join(about.name for about in abouts))
    return out


def _unique(drafts: list[Draft]) -> list[Draft]:
    """One draft per recipient (a secretary who is also the township officer hears once)."""
    seen, out = set(), []
    for draft in drafts:
        if draft.recipient_id not in seen:
            seen.add(draft.recipient_id)
            out.append(draft)
    return out


# -- planners, one per event ----------------------------------------------------------------------
def reminder_cause(meeting: dict) -> str:
    return f"meeting:{meeting['meeting_id']}@{meeting['held_at']}"


def plan_reminders(rules: Rules, directory: Directory, meeting: dict, held_at: datetime,
                   now: datetime) -> list[Draft]:
    """Before a scheduled meeting, each expected attendee (SPEC §3: 24 h before)."""
    if held_at <= now:
        return []
    branch = directory.org(meeting["branch_id"])
    context = {"meeting": meeting, "held_at": held_at, "branch": branch}
    not_before = held_at - timedelta(hours=rules.meeting_reminder_hours)
    drafts = []
    for member_id in meeting.get("expected") or []:
        drafts += _member_draft(directory, member_id, "meeting_reminder", reminder_cause(meeting),
                                "meeting_reminder", context, not_before=not_before,
                                ref=meeting["meeting_id"], deadline=held_at)
    return _merge_relays(drafts)


def plan_cancellation_notices(directory: Directory, meeting: dict, held_at: datetime,
                              reminded: list[str]) -> list[Draft]:
    """Those already reminded of a meeting hear that it is cancelled."""
    branch = directory.org(meeting["branch_id"])
    context = {"meeting": meeting, "held_at": held_at, "branch": branch}
    drafts = []
    for member_id in reminded:
        drafts += _member_draft(directory, member_id, "meeting_reminder",
                                f"meeting:{meeting['meeting_id']}@cancelled",
                                "meeting_cancelled", context, urgent=False,
                                ref=meeting["meeting_id"], deadline=held_at)
    return _merge_relays(drafts)


def absentees(meeting: dict) -> list[str]:
    """Expected attendees marked absent (a visitor listed absent owes nothing)."""
    return [row["member_id"] for row in meeting.get("attendance") or []
            if row.get("status") == "absent" and row.get("expected", True)]


def followups_apply(rules: Rules, held_at: datetime, now: datetime) -> bool:
    """A meeting reported long after it was held (history being loaded) raises no follow-up."""
    return now - held_at <= timedelta(days=rules.followups_within_days)


def plan_followups(rules: Rules, directory: Directory, meeting: dict, held_at: datetime,
                   now: datetime) -> list[Draft]:
    """A follow-up to each absentee and one digest to the branch secretary, after a short
    grace so that a corrected attendance withdraws them before they go out."""
    missing = absentees(meeting)
    if not missing or not followups_apply(rules, held_at, now):
        return []
    branch = directory.org(meeting["branch_id"])
    not_before = now + timedelta(seconds=rules.absence_followup_delay_seconds)
    reply_by = (now + timedelta(days=rules.reply_within_days))
    context = {"meeting": meeting, "held_at": held_at, "branch": branch, "reply_by": reply_by}
    cause = f"meeting:{meeting['meeting_id']}"
    drafts = []
    for member_id in missing:
        drafts += _member_draft(directory, member_id, "absence_followup", cause,
                                "absence_followup", context, not_before=not_before,
                                ref=meeting["meeting_id"], about_id=member_id)
    digests = plan_digest(directory, meeting, held_at, not_before, missing)
    return _merge_relays(_fold_relays(drafts, digests) + digests)


def _fold_relays(drafts: list[Draft], digests: list[Draft]) -> list[Draft]:
    """The secretary's digest already names every absentee: it also says who among them can
    be reached only in-app, instead of a separate relay note about the same meeting (one
    message to the secretary, not two)."""
    digest_to = {digest.recipient_id: digest for digest in digests}
    kept, folded = [], set()
    for draft in drafts:
        digest = digest_to.get(draft.recipient_id) if draft.template == "relay" else None
        if digest is None:
            kept.append(draft)
        elif draft.context["about"].member_id not in folded:
            # every digest of the meeting says it (the secretary's and the branch robot's);
            # a new list each time: the digests share their context
            folded.add(draft.context["about"].member_id)
            for each in digests:
                each.context["unreachable"] = [*each.context["unreachable"],
                                               draft.context["about"].name]
    return kept


def plan_digest(directory: Directory, meeting: dict, held_at: datetime, not_before: datetime,
                missing: list[str]) -> list[Draft]:
    branch = directory.org(meeting["branch_id"])
    names = []
    for member_id in missing:
        contact = directory.contact(member_id)
        names.append(contact.name if contact else member_id)
    context = {"meeting": meeting, "held_at": held_at, "branch": branch, "absentees": names,
               "unreachable": []}  # absentees reachable only in-app (_fold_relays)
    return _secretary_drafts(directory, meeting["branch_id"], "absence_digest",
                             f"meeting:{meeting['meeting_id']}", "absence_digest", context,
                             not_before=not_before, ref=meeting["meeting_id"])


def _branch_alert(rules: Rules, directory: Directory, kind: str, cause: str, data: dict,
                  context: dict) -> list[Draft]:
    """Overdue and silent branches: the secretary, the township officer and the township's
    robot (SPEC §4)."""
    branch = directory.org(data["branch_id"])
    if branch is None:
        return []
    urgent = rules.urgent(kind)
    context = {**context, "branch": branch, "data": data}
    drafts = _secretary_drafts(directory, branch.org_id, kind, cause, kind, context,
                               urgent=urgent, ref=branch.org_id)
    township = _township_of(directory, branch)
    if township is not None:
        if township.secretary_id:
            drafts += _secretary_drafts(directory, township.org_id, kind, cause, kind, context,
                                        urgent=urgent, ref=branch.org_id)
        drafts.append(_org_draft(directory, township, kind, cause, kind, context,
                                 urgent=urgent, ref=branch.org_id))
    return _unique(drafts)


def plan_overdue(rules: Rules, directory: Directory, data: dict) -> list[Draft]:
    cause = (f"branch_overdue:{data['branch_id']}:{data['type']}:{data['period']}:"
             f"{data.get('group_id') or ''}")
    return _branch_alert(rules, directory, "branch_overdue", cause, data, {})


def plan_silent(rules: Rules, directory: Directory, data: dict) -> list[Draft]:
    cause = (f"branch_silent:{data['branch_id']}:{data.get('last_meeting_at') or 'never'}:"
             f"{data['days']}")
    return _branch_alert(rules, directory, "branch_silent", cause, data, {})


def plan_due_soon(rules: Rules, directory: Directory, data: dict) -> list[Draft]:
    """事前提醒: the secretary, before the period ends with the slot still unmet."""
    cause = (f"due_soon:{data['branch_id']}:{data['type']}:{data['period']}:"
             f"{data.get('group_id') or ''}")
    branch = directory.org(data["branch_id"])
    if branch is None:
        return []
    return _secretary_drafts(directory, branch.org_id, "due_soon", cause, "due_soon",
                             {"branch": branch, "data": data}, urgent=rules.urgent("due_soon"),
                             ref=branch.org_id)


def plan_at_risk(rules: Rules, directory: Directory, data: dict) -> list[Draft]:
    """By level (SPEC §4): notice → the member and the secretary; alert → the secretary and the
    township officer; review → the same, flagged for the branch assembly."""
    level = data["level"]
    months = data.get("months_list") or []
    # scoring lists the months newest first; the streak is named by its first (oldest) month,
    # which stays the same while the streak grows
    first = months[-1]["month"] if months else ""
    cause = f"member_at_risk:{data['member_id']}:{level}:{first}"
    urgent = rules.urgent("member_at_risk", level)
    member = directory.contact(data["member_id"])
    branch = directory.org(data["branch_id"])
    if member is None or branch is None:
        return []
    context = {"data": data, "branch": branch, "subject_member": member, "level": level}
    common = dict(urgent=urgent, ref=branch.org_id, about_id=member.member_id)
    drafts: list[Draft] = []
    if level == "notice":
        drafts += _member_draft(directory, member.member_id, "member_at_risk", cause,
                                "member_at_risk_member", context, urgent=urgent,
                                ref=branch.org_id)
    drafts += _secretary_drafts(directory, branch.org_id, "member_at_risk", cause,
                                "member_at_risk", context, exclude=member.member_id, **common)
    if level != "notice":
        township = _township_of(directory, branch)
        if township is not None:
            drafts += _secretary_drafts(directory, township.org_id, "member_at_risk", cause,
                                        "member_at_risk", context, exclude=member.member_id,
                                        **common)
    return _unique(drafts)  # an organization without a secretary: in-app (_secretary_drafts)


def plan_grades(directory: Directory, data: dict) -> list[Draft]:
    """The year-end grade notice, to each member of the branch."""
    drafts = []
    for grade in data.get("grades") or []:
        drafts += _member_draft(directory, grade["member_id"], "grade_notice",
                                f"grade:{data['year']}", "grade_notice",
                                {"grade": grade, "year": data["year"]})
    return _merge_relays(drafts)
