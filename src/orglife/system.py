"""orglife, declared once: every service, what it publishes and what it consumes.

The runner, `orglife up/status`, the broker topology, the schema versions consumers accept,
the migrations and the docker-compose check all read this (see orglife/common/system.py).
A new service is one more `Service(...)` here plus its folder under services/.

    python -m orglife.system          prints the declaration
    python -m orglife.system --check  also imports every service class (the Dockerfile runs it)
"""
from __future__ import annotations

from orglife.common.system import Event, Peer, Service, System

MEMBER_EVENTS = ("organization_registered", "organization_updated", "member_registered",
                 "member_updated", "member_transferred")
MEETING_EVENTS = ("meeting_logged", "meeting_amended", "meeting_cancelled", "activity_logged")

SYSTEM = System(
    services=[
        Service(
            "members", "MembersService",
            publishes=[
                Event("organization_registered"),
                # the whole organization, as organization_registered (a rename, a category,
                # a secretary or a robot changed); the highest version wins
                Event("organization_updated"),
                Event("member_registered"),
                Event("member_updated"),
                # v2: flat data (member_id at the top level, SPEC §4); v1 nested it in "member"
                Event("member_transferred", version=2, still_read=(1,)),
            ],
            subscribes={"meetings": MEETING_EVENTS},
            instances=2,
        ),
        Service(
            "meetings", "MeetingsService",
            publishes=[
                Event("meeting_scheduled"),
                Event("meeting_logged"),
                Event("meeting_amended"),
                Event("meeting_cancelled"),
                Event("activity_logged"),
                Event("intake_rejected"),
            ],
            subscribes={"members": MEMBER_EVENTS,
                        "intake": ("meeting_reported", "activity_reported")},
        ),
        Service(
            "scoring", "ScoringService",
            publishes=[
                Event("scores_changed"),
                Event("member_at_risk"),
                Event("branch_silent"),
                Event("branch_overdue"),
                # a slot of the current period still unmet days before the period ends (事前提醒)
                Event("branch_due_soon"),
                # a closed year's grades, one event per branch (the year-end notice)
                Event("year_graded"),
            ],
            subscribes={"members": MEMBER_EVENTS, "meetings": MEETING_EVENTS},
        ),
        Service(
            "notifications", "NotificationsService",
            publishes=[
                Event("notification_delivered"),
                Event("notification_failed"),
            ],
            subscribes={"members": MEMBER_EVENTS,
                        "meetings": ("meeting_scheduled", "meeting_logged", "meeting_amended",
                                     "meeting_cancelled"),
                        "scoring": ("branch_overdue", "branch_silent", "branch_due_soon",
                                    "member_at_risk", "year_graded")},
        ),
        # The web page for admins and secretaries (SPEC §4): reads the others over RPC with
        # the signed-in user's token; no database, no events.
        Service(
            "dashboard", "DashboardService",
            database=False,
            calls=("members", "meetings", "scoring", "notifications"),
        ),
    ],
    # Other systems (a check-in app, an HR system) report meetings and activities here.
    peers=[Peer("intake", publishes=[Event("meeting_reported"), Event("activity_reported")])],
)


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="import every declared service class")
    args = parser.parse_args(argv)
    for service in SYSTEM.services:
        subscribes = "; ".join(f"{source}: {', '.join(types)}"
                               for source, types in service.subscribes.items())
        print(f"{service.name:<14} {service.class_path}")
        print(f"{'':<14} publishes "
              f"{', '.join(f'{e.type}/v{e.version}' for e in service.publishes) or '-'}")
        print(f"{'':<14} consumes  {subscribes or '-'}")
        if service.calls:
            print(f"{'':<14} calls     {', '.join(service.calls)}")
        if args.check:
            service.load_class()
    for peer in SYSTEM.peers:
        print(f"{peer.name:<14} (peer systems) publish {', '.join(e.type for e in peer.publishes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
