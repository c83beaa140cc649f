"""members' domain rules as plain functions: no nameko, no database."""
from collections import namedtuple
from datetime import date

import pytest

from services.members import domain

Org = namedtuple("Org", "org_id kind parent_id path")
TODAY = date(2026, 11, 20)
BRANCH = Org("b1", "branch", "t1", "/c1/t1/b1/")
GROUP = Org("g1", "group", "b1", "/c1/t1/b1/g1/")


@pytest.mark.parametrize("raw, stored", [
    ("13800138000", "13800138000"), ("138 0013 8000", "13800138000"),
    ("+86 138-0013-8000", "13800138000"), ("0086(138)00138000", "13800138000"),
])
def test_phones_are_stored_as_eleven_digits(raw, stored):
    assert domain.normalize_phone(raw) == stored
    assert domain.phone_error(stored) is None


@pytest.mark.parametrize("phone", ["12345678901", "1380013800", "23800138000", "1380013800a"])
def test_other_numbers_are_not_chinese_mobiles(phone):
    assert domain.phone_error(phone)


@pytest.mark.parametrize("org, parent, field", [
    ({"kind": "county"}, None, None),
    ({"kind": "county", "parent_id": "c0"}, Org("c0", "county", None, "/c0/"), "parent_id"),
    ({"kind": "township", "parent_id": "c1"}, Org("c1", "county", None, "/c1/"), None),
    ({"kind": "branch", "parent_id": "c1", "category": "village"},
     Org("c1", "county", None, "/c1/"), "parent_id"),
    ({"kind": "branch", "parent_id": "gb1", "category": "school"},
     Org("gb1", "general_branch", "t1", "/c1/t1/gb1/"), None),
    ({"kind": "branch", "parent_id": "t1"}, Org("t1", "township", "c1", "/c1/t1/"), "category"),
    ({"kind": "group", "parent_id": "b1", "category": "village"}, BRANCH, "category"),
])
def test_organization_kinds_parents_and_categories(org, parent, field):
    errors = domain.check_organization(org, parent)
    assert (field in errors) if field else errors == {}


def test_a_member_is_placed_in_a_branch_and_a_group_of_that_branch():
    member = {"branch_id": "b1", "group_id": "g1", "joined_on": date(2001, 7, 1)}
    assert domain.check_member(member, BRANCH, GROUP, TODAY) == {}
    other_group = Org("g9", "group", "b9", "/c1/t1/b9/g9/")
    assert "group_id" in domain.check_member(dict(member, group_id="g9"), BRANCH, other_group,
                                             TODAY)
    township = Org("t1", "township", "c1", "/c1/t1/")
    assert "branch_id" in domain.check_member(dict(member, branch_id="t1"), township, GROUP,
                                              TODAY)
    assert "joined_on" in domain.check_member(dict(member, joined_on=date(2026, 11, 21)),
                                              BRANCH, GROUP, TODAY)
    assert "mobile_location" in domain.check_member(dict(member, mobile=True), BRANCH, GROUP,
                                                    TODAY)


def test_generated_ids_come_from_name_and_phone_else_name_and_branch():
    by_phone = domain.generated_member_id({"name": "张伟", "branch_id": "b1",
                                           "phone": "13800138000"})
    moved = domain.generated_member_id({"name": "张伟", "branch_id": "b2",
                                        "phone": "13800138000"})
    assert by_phone == moved  # the same person, wherever the sheet lists them
    spouse = domain.generated_member_id({"name": "李娜", "branch_id": "b1",
                                         "phone": "13800138000"})
    assert spouse != by_phone  # never from the phone alone: two people may share one
    a = domain.generated_member_id({"name": "王芳", "branch_id": "b1"})
    b = domain.generated_member_id({"name": "王芳", "branch_id": "b2"})
    assert a != b and a.startswith("m-")


def test_identity_is_name_and_phone_else_name_and_branch():
    from types import SimpleNamespace as P
    people = [P(member_id="m1", name="张伟", phone="13800138000", branch_id="b1"),
              P(member_id="m2", name="李娜", phone="13800138000", branch_id="b1"),
              P(member_id="m3", name="王芳", phone=None, branch_id="b2")]
    ids = lambda row: [p.member_id for p in domain.identity_matches(row, people)]  # noqa: E731
    assert ids({"name": "李娜", "phone": "13800138000", "branch_id": "b9"}) == ["m2"]
    assert ids({"name": "赵敏", "phone": "13800138000", "branch_id": "b1"}) == []
    assert ids({"name": "王芳", "branch_id": "b2"}) == ["m3"]
    assert ids({"name": "王芳", "branch_id": "b1"}) == []


def test_changed_fields_ignore_the_version():
    assert domain.changed_fields({"name": "a", "version": 1}, {"name": "a", "version": 2}) == {}
    assert domain.changed_fields({"name": "a"}, {"name": "b"}) == {"name": "b"}
