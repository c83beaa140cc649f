import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import eventlet  # noqa: E402

# Before Typer (and the pydantic it imports) loads: the RPC commands run on green sockets.
eventlet.monkey_patch()

from orglife.cli.app import main  # noqa: E402

main()
