"""A service whose container dies a few seconds after each of its first two starts (a thread of
it raises), to show that the process then exits and its supervisor starts it again."""
import os
from pathlib import Path

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc


class Doom(DependencyProvider):
    """Kills the container from a managed thread, on the first two starts (counted in a
    file of the home)."""

    def start(self):
        marker = Path(os.environ["ORGLIFE_HOME"]) / "doomed-starts"
        starts = int(marker.read_text() or 0) + 1 if marker.exists() else 1
        marker.write_text(str(starts))
        if starts <= 2:
            self.container.spawn_managed_thread(self.die)

    @staticmethod
    def die():
        eventlet.sleep(3)
        raise RuntimeError("a thread of this container failed")


class DoomedService:
    name = "doomed"
    doom = Doom()

    @rpc
    def health(self):
        return {"service": self.name, "ok": True, "outbox_backlog": 0}
