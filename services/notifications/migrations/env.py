from alembic import context

from orglife.common.migrate import run_env

run_env(context)
