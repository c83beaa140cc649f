"""scoring's copy of organizations follows organization_updated (issue 9): a rename or a new
category reaches rankings, unevenness and branch figures; an older version arriving late
changes nothing."""
from sqlalchemy import select

from orglife.common.envelope import Envelope
from tests.scoring.conftest import attendance, register_village

NINE = [f"m{n}" for n in range(1, 10)]


def assembly(meeting_id, day, branch_id="b1", **who):
    return {"meeting_id": meeting_id, "branch_id": branch_id, "type": "branch_assembly",
            "held_at": f"{day}T19:30:00", "topic": "学习", "attendance": attendance(**who)}


def copy_of(scoring_store, org_id):
    from services.scoring.models import OrgCopy
    with scoring_store.engine.connect() as conn:
        row = conn.execute(select(OrgCopy.name, OrgCopy.category, OrgCopy.version,
                                  OrgCopy.registered_on)
                           .where(OrgCopy.org_id == org_id)).one()
    return dict(row._mapping)


def test_a_rename_and_a_new_category_reach_rankings_and_unevenness(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE[:6]))
    pipeline.deliver()
    county = scoring_worker()
    uneven = {row["category"]: row for row in county.unevenness("c1", 2026)["categories"]}
    assert uneven["village"]["branches"] == 1 and uneven["community"]["branches"] == 1
    assert county.branch_compliance("b1", 2026)["category"] == "village"

    pipeline.members.update_organization({"org_id": "b1", "name": "石桥社区党支部",
                                          "category": "community"})
    [changed] = [e for e in pipeline.deliver() if e.event_type == "scores_changed"]
    assert "b1" in changed.data["branch_ids"]
    uneven = {row["category"]: row for row in county.unevenness("c1", 2026)["categories"]}
    assert set(uneven) == {"community", "enterprise"}
    assert uneven["community"]["branches"] == 2
    figures = county.branch_compliance("b1", 2026)
    assert (figures["name"], figures["category"]) == ("石桥社区党支部", "community")
    names = {i["branch_id"]: i["name"] for i in county.ranking("c1", 2026, "branch")["items"]}
    assert names["b1"] == "石桥社区党支部"

    # a secretary or a robot changes no figure, and nothing else moves
    pipeline.members.update_organization({"org_id": "b1", "secretary_id": "m1"})
    pipeline.deliver()
    assert county.branch_compliance("b1", 2026)["compliance"] == figures["compliance"]


def test_figures_stored_for_an_earlier_year_get_the_new_name(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("old", "2025-12-10", present=NINE[:6]))
    pipeline.deliver()
    county = scoring_worker()
    assert county.branch_compliance("b1", 2025)["name"] == "石桥村党支部"
    pipeline.members.update_organization({"org_id": "b1", "name": "石桥社区党支部",
                                          "category": "community"})
    pipeline.deliver()
    last_year = county.branch_compliance("b1", 2025)
    assert (last_year["name"], last_year["category"]) == ("石桥社区党支部", "community")
    uneven = county.unevenness("c1", 2025)["categories"]
    assert "village" not in {row["category"] for row in uneven}


def test_updates_out_of_order_keep_the_highest_version(pipeline, scoring_worker,
                                                       scoring_store):
    register_village(pipeline)
    pipeline.members.update_organization({"org_id": "b1", "name": "二名", "category": "school"})
    pipeline.members.update_organization({"org_id": "b1", "name": "三名"})
    events = [e for e in pipeline.new_events("members") if e.event_type == "organization_updated"]
    assert [e.data["version"] for e in events] == [2, 3]
    v2, v3 = events
    consumer = scoring_worker()
    consumer.on_members_events([v3])
    consumer.on_members_events([v2])  # older, late: nothing changes
    consumer.on_members_events([v3])  # a redelivery
    consumer.drain_dirty()
    assert copy_of(scoring_store, "b1")["name"] == "三名"
    assert copy_of(scoring_store, "b1")["category"] == "school"  # v3 carries the whole record
    assert copy_of(scoring_store, "b1")["version"] == 3
    assert copy_of(scoring_store, "b1")["registered_on"] is not None

    # the copy built from an update alone (its registration not arrived yet) is the same
    registered = Envelope.new("members", "organization_registered", {
        **v2.data, "name": "石桥村党支部", "category": "village", "version": 1})
    consumer.on_members_events([registered])
    assert copy_of(scoring_store, "b1")["version"] == 3
    uneven = {r["category"] for r in consumer.unevenness("c1", 2026)["categories"]}
    assert "school" in uneven and "village" not in uneven
