"""Expected attendees and quorum as plain functions (no broker, no database)."""
from orglife.common.rules import load_rules
from services.meetings import domain
from services.meetings.domain import Person

RULES = load_rules()


def person(n, status="formal", committee=False, no_vote=False, group=None, branch="b1"):
    return Person(f"m{n}", branch, group, status, committee, no_vote)


def test_an_assembly_of_nine_voting_members_needs_five_present():
    roster = [person(n) for n in range(9)] + [person(9, "probationary"),
                                              person(10, no_vote=True)]
    listed = [{"member_id": f"m{n}", "status": "present"} for n in range(4)]
    listed += [{"member_id": "m9", "status": "present"}, {"member_id": "m10", "status": "present"}]
    built = domain.build_attendance(RULES, "branch_assembly", "b1", None, roster, listed,
                                    {p.member_id: p for p in roster})
    result = domain.quorum(RULES, "branch_assembly", roster, built.rows)
    # probationary and no_vote members attend but do not count toward the quorum
    assert (result["eligible"], result["needed"], result["present"], result["met"]) == (9, 5, 4, False)
    assert "4 of 9 voting members present; 5 needed" in result["reason"]
    listed.append({"member_id": "m4", "status": "present", "remote": True})
    built = domain.build_attendance(RULES, "branch_assembly", "b1", None, roster, listed,
                                    {p.member_id: p for p in roster})
    assert domain.quorum(RULES, "branch_assembly", roster, built.rows)["met"] is True


def test_unlisted_expected_members_are_absent_and_visitors_are_marked():
    roster = [person(1), person(2)]
    visitor = person(7, branch="b2")
    built = domain.build_attendance(RULES, "lecture", "b1", None, roster,
                                    [{"member_id": "m1", "status": "leave"},
                                     {"member_id": "m7", "status": "present"}],
                                    {"m1": roster[0], "m7": visitor})
    rows = {r["member_id"]: r for r in built.rows}
    assert rows["m1"]["status"] == "leave" and rows["m2"]["status"] == "absent"
    assert rows["m7"]["visiting"] is True and rows["m7"]["expected"] is False
    summary = domain.attendance_summary(built.rows)
    assert summary == {"expected": 2, "present": 1, "leave": 1, "absent": 1, "remote": 0,
                       "visiting": 1}


def test_visitors_never_count_toward_the_host_quorum():
    roster = [person(n) for n in range(3)]
    visitors = {f"v{n}": Person(f"v{n}", "b2", None, "formal", False, False) for n in range(5)}
    listed = [{"member_id": m, "status": "present"} for m in visitors] + [
        {"member_id": "m0", "status": "present"}]
    built = domain.build_attendance(RULES, "branch_assembly", "b1", None, roster, listed,
                                    {**visitors, "m0": roster[0]})
    assert domain.quorum(RULES, "branch_assembly", roster, built.rows)["met"] is False


def test_expected_attendees_follow_the_rules_file():
    roster = [person(1, committee=True, group="g1"), person(2, group="g1"), person(3)]
    ids = lambda people: [p.member_id for p in people]  # noqa: E731
    assert ids(domain.expected_attendees(RULES, "committee", None, roster)) == ["m1"]
    assert ids(domain.expected_attendees(RULES, "group", "g1", roster)) == ["m1", "m2"]
    assert ids(domain.expected_attendees(RULES, "theme_day", None, roster)) == ["m1", "m2", "m3"]


def test_duplicates_and_unknown_members_are_named():
    roster = [person(1)]
    built = domain.build_attendance(RULES, "lecture", "b1", None, roster,
                                    [{"member_id": "m1", "status": "present"},
                                     {"member_id": "m1", "status": "absent"},
                                     {"member_id": "ghost", "status": "present"}],
                                    {"m1": roster[0]})
    assert "attendance.1.member_id" in built.found.errors
    # An unknown id is kept apart from errors (intake waits for it) and named in the message.
    assert built.found.unknown == {"attendance.2.member_id": ("member", "ghost")}
    assert built.found.missing == ["ghost"] and not built.found.only_unknown
    assert built.found.all_errors()["attendance.2.member_id"] == ["unknown member 'ghost'"]


def test_committee_quorum_counts_committee_members():
    roster = [person(1, committee=True), person(2, committee=True), person(3, committee=True),
              person(4)]
    built = domain.build_attendance(RULES, "committee", "b1", None, roster,
                                    [{"member_id": "m1", "status": "present"},
                                     {"member_id": "m2", "status": "present"}],
                                    {p.member_id: p for p in roster})
    assert [r["member_id"] for r in built.rows] == ["m1", "m2", "m3"]
    result = domain.quorum(RULES, "committee", roster, built.rows)
    assert (result["needed"], result["met"]) == (2, True)


def test_the_fast_attendance_field_agrees_with_the_reference_schema():
    """AttendanceList checks entries in plain Python for speed; it must answer as the nested
    marshmallow schema would, entry by entry."""
    import marshmallow
    from marshmallow import fields

    from services.meetings.schemas import AttendanceList, AttendanceSchema

    class Fast(marshmallow.Schema):
        attendance = AttendanceList()

    class Reference(marshmallow.Schema):
        attendance = fields.List(fields.Nested(AttendanceSchema))

    cases = [
        [{"member_id": "m1", "status": "present"}],
        [{"member_id": "m1", "status": "present", "remote": "是"}],
        [{"member_id": "m1", "status": "leave", "remote": False}],
        [{"member_id": "m1", "status": "absent", "remote": True}],
        [{"member_id": "m1", "status": "sleeping"}],
        [{"member_id": "a/b", "status": "present"}],
        [{"member_id": "", "status": "present"}],
        [{"status": "present"}],
        [{"member_id": "m1"}],
        [{"member_id": "m1", "status": "present", "colour": "red"}],
        [{"member_id": "m1", "status": "present", "remote": "maybe"}],
        [{"member_id": "m1", "status": "present"}, {"member_id": "m2", "status": "late"}],
    ]
    for case in cases:
        def answer(schema):
            try:
                return "ok", schema.load({"attendance": case})
            except marshmallow.ValidationError as err:
                return "error", {k: sorted(v) for k, v in err.messages["attendance"].items()}
        fast, reference = answer(Fast()), answer(Reference())
        assert fast[0] == reference[0], case
        if fast[0] == "ok":
            assert fast == reference, case
        else:  # the same entries, and in each the same fields (wording may differ)
            assert fast[1] == reference[1], (case, fast, reference)


def test_quorum_arithmetic_is_decimal():
    from orglife.common.rules import Quorum
    assert Quorum(0.29, "voting_members").needed(100) == 30
    assert Quorum(0.5, "voting_members").needed(9) == 5
    assert Quorum(0.5, "voting_members").needed(10) == 6


def test_the_roster_takes_each_members_version_in_force_at_the_meeting():
    """roster._choose over roster._versions (rows in any order, naive SQLite instants): the
    latest version started by then, the higher version on a tie, and before the first one
    the member is known but not joined."""
    from datetime import datetime, timezone

    from services.meetings.roster import _choose, _versions

    def at(day):
        return datetime(2026, 3, day, tzinfo=timezone.utc)
    rows = [("m1", 3, datetime(2026, 3, 20), "b2", None, "formal", False, False),
            ("m1", 1, datetime(2026, 3, 1), "b1", "g1", "formal", True, False),
            ("m1", 2, datetime(2026, 3, 20), "b2", None, "formal", False, True),
            ("m2", 1, datetime(2026, 3, 10), "b1", None, "probationary", False, False)]
    versions = _versions(rows)
    early, spring, late = (_choose(versions, at(day)) for day in (5, 15, 25))
    assert (early["m1"].branch_id, early["m1"].committee_member) == ("b1", True)
    assert (early["m2"].joined, early["m2"].active) == (False, False)
    assert (spring["m2"].joined, spring["m2"].status) == (True, "probationary")
    assert (late["m1"].branch_id, late["m1"].no_vote) == ("b2", False)  # version 3 of the 20th
    assert _choose(versions, at(20))["m1"].branch_id == "b2"  # in force from that instant
    assert list(late) == ["m1", "m2"]
