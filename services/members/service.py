"""members: the organization tree and the member registry (SPEC §4).

Thin entrypoints: check the caller, validate the payload, run one use case of registry.py in
one unit of work.
"""
from __future__ import annotations

from orglife.common.auth import ADMINS, READERS, Auth, authorized
from orglife.common.clock import ClockProvider
from orglife.common.errors import EXPECTED_ERRORS, ValidationError
from orglife.common.messaging import subscribe
from orglife.common.rpc import rpc
from orglife.common.schemas import id_argument, load
from orglife.common.store import Store

from . import participation, registry, schemas
from .models import backbone

MAX_IMPORT_ROWS = 5000
# Arguments holding phone numbers and e-mail addresses, redacted wherever nameko tools log
# call arguments (SPEC §7); an import's rows are redacted whole.
MEMBER_CONTACTS = ("member.phone", "member.email")
CHANGED_CONTACTS = ("changes.phone", "changes.email")
# A group robot's webhook carries its access token: never logged either.
ORG_ROBOT = ("org.robot_url",)
CHANGED_ROBOT = ("changes.robot_url",)


class MembersService:
    name = "members"

    store = Store(backbone)
    auth = Auth()
    clock = ClockProvider()

    @rpc
    def health(self):
        """Liveness and outbox backlog for `orglife status` (no personal data, no token)."""
        return {"service": self.name, "ok": True, "outbox_backlog": self.store.outbox_backlog()}

    # -- organizations ------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS, sensitive_arguments=ORG_ROBOT)
    @authorized(*ADMINS)
    def register_organization(self, org):
        payload = load(schemas.OrganizationSchema(), org)
        return self.store.change(lambda uow: registry.register_organization(
            uow, self.auth.principal, payload, self.clock.now()))

    @rpc(expected_exceptions=EXPECTED_ERRORS, sensitive_arguments=CHANGED_ROBOT)
    @authorized(*ADMINS)
    def update_organization(self, changes):
        payload = load(schemas.OrganizationChangesSchema(), changes)
        with self.store() as uow:
            return registry.update_organization(uow, self.auth.principal, payload)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def get_organization(self, org_id):
        org_id = id_argument("org_id", org_id)
        with self.store.read() as uow:
            return registry.get_organization(uow, self.auth.principal, org_id)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_organizations(self, filters=None):
        payload = load(schemas.OrganizationFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_organizations(uow, self.auth.principal, payload)

    # -- members ------------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS, sensitive_arguments=MEMBER_CONTACTS)
    @authorized(*ADMINS)
    def register_member(self, member):
        payload = load(schemas.NewMemberSchema(), member)
        return self.store.change(lambda uow: registry.register_member(
            uow, self.auth.principal, payload, self.clock.today()))

    @rpc(expected_exceptions=EXPECTED_ERRORS, sensitive_arguments=("rows",))
    @authorized(*ADMINS)
    def import_members(self, rows):
        if not isinstance(rows, list):
            raise ValidationError.field("rows", "expected a list of rows")
        if len(rows) > MAX_IMPORT_ROWS:
            raise ValidationError.field(
                "rows", f"at most {MAX_IMPORT_ROWS} rows a call; send the file in chunks")
        schema = schemas.ImportRowSchema()
        loaded = []
        for row in rows:
            try:
                loaded.append(load(schema, row))
            except ValidationError as exc:
                loaded.append(exc)
        return self.store.change(lambda uow: registry.import_members(
            uow, self.auth.principal, rows, loaded, self.clock.today()))

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def get_member(self, member_id):
        member_id = id_argument("member_id", member_id)
        with self.store.read() as uow:
            return registry.get_member(uow, self.auth.principal, member_id)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_members(self, filters=None):
        payload = load(schemas.MemberFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_members(uow, self.auth.principal, payload)

    @rpc(expected_exceptions=EXPECTED_ERRORS, sensitive_arguments=CHANGED_CONTACTS)
    @authorized(*ADMINS)
    def update_member(self, changes):
        payload = load(schemas.MemberChangesSchema(), changes)
        with self.store() as uow:
            return registry.update_member(uow, self.auth.principal, payload, self.clock.today())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def transfer_member(self, transfer):
        payload = load(schemas.TransferSchema(), transfer)
        with self.store() as uow:
            return registry.transfer_member(uow, self.auth.principal, payload, self.clock.today())

    # -- events -------------------------------------------------------------------------------
    @subscribe("meetings", participation.HANDLERS, batch_size=400)
    def on_meetings_events(self, envelopes):
        """Keep each member's participation record (highest meeting revision wins)."""
        with self.store() as uow:
            participation.prefetch_versions(uow.session, envelopes)
            for envelope in uow.first_times(envelopes):
                participation.HANDLERS[envelope.event_type](uow.session, envelope.data,
                                                            self.clock.tz)
            uow.commit()
