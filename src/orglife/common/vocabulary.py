"""The codes of SPEC §2, shared by every service, the CLI and the schemas."""

ORG_KINDS = ("county", "township", "general_branch", "branch", "group")
# Which kind of organization each kind hangs under (None: a root).
ORG_PARENT_KINDS = {
    "county": (None,),
    "township": ("county",),
    "general_branch": ("township",),
    "branch": ("township", "general_branch"),
    "group": ("branch",),
}
BRANCH_CATEGORIES = (
    "village", "community", "enterprise", "institution", "school", "social_org", "mobile", "other",
)
ACTIVE_STATUSES = ("formal", "probationary")
ARCHIVED_STATUSES = ("transferred_out", "removed", "deceased")
MEMBER_STATUSES = ACTIVE_STATUSES + ARCHIVED_STATUSES

MEETING_TYPES = (
    "branch_assembly", "committee", "group", "lecture", "theme_day", "org_life",
    "democratic_review", "study",
)
ACTIVITY_KINDS = ("household_visit", "volunteer", "heart_talk")
ATTENDANCE_STATUSES = ("present", "leave", "absent")
