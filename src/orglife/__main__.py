import os
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", category=DeprecationWarning)

# The CLI talks to a broker on a known host: eventlet's green DNS (dnspython, a tenth of a
# second at every start) buys it nothing. Unset again once eventlet has read it, so that the
# services `up` starts keep green DNS.
_OURS = "EVENTLET_NO_GREENDNS" not in os.environ
if _OURS:
    os.environ["EVENTLET_NO_GREENDNS"] = "yes"
import eventlet  # noqa: E402

# Before Typer (and the pydantic it imports) loads: the RPC commands run on green sockets.
eventlet.monkey_patch()
if _OURS:
    del os.environ["EVENTLET_NO_GREENDNS"]

from orglife.cli.app import main  # noqa: E402

main()
