"""A toy service added to the system through the declaration alone (see tests/integration/
test_stack.py): this entry, and the package's service.py, models.py and migrations/.

    ORGLIFE_SYSTEM=tests.toy:SYSTEM ./orglife up     runs it beside members and meetings

DOOMED is a system with a service whose container dies once (doomed.py): supervision.
"""
from orglife.common.system import Event, Service
from orglife.system import SYSTEM as ORGLIFE

SYSTEM = ORGLIFE.with_service(Service(
    "toy", "ToyService", package="tests.toy",
    publishes=[Event("member_noted")],
    subscribes={"members": ("member_registered",)},
))

DOOMED = ORGLIFE.with_service(Service("doomed", "DoomedService", package="tests.toy",
                                      module="doomed", database=False))
