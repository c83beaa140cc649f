import warnings

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from orglife.cli.app import main  # noqa: E402

main()
