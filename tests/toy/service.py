"""The toy service: notes each registered member and announces it (`member_noted`)."""
from nameko.rpc import rpc
from sqlalchemy import func, select

from orglife.common.messaging import subscribe
from orglife.common.store import Store

from .models import Noted, backbone


def note(uow, envelope) -> None:
    uow.session.add(Noted(member_id=envelope.data["member_id"], name=envelope.data["name"]))
    uow.emit("member_noted", {"member_id": envelope.data["member_id"]})


HANDLERS = {"member_registered": note}


class ToyService:
    name = "toy"
    store = Store(backbone)

    @rpc
    def health(self):
        with self.store() as uow:
            noted = uow.session.scalar(select(func.count()).select_from(Noted))
        return {"service": self.name, "ok": True, "outbox_backlog": self.store.outbox_backlog(),
                "noted": noted}

    @subscribe("members", HANDLERS)
    def on_members_event(self, envelope):
        with self.store() as uow:
            if uow.first_time(envelope):
                HANDLERS[envelope.event_type](uow, envelope)
            uow.commit()
