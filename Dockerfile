# syntax=docker/dockerfile:1
# One image for every orglife service: `docker run IMAGE members` (or meetings, ...).
# docker-compose.yml runs it with the configuration in the environment (SPEC §5).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONWARNINGS=ignore::DeprecationWarning

WORKDIR /app

# Pinned dependencies first: this layer is rebuilt only when requirements.lock changes.
# (Every pin but psycogreen, which is pure Python, comes as a manylinux wheel, psycopg2-binary
# included: no compiler is needed.)
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself, without dependencies (they are all pinned above).
# Editable, because orglife finds the services' Alembic migrations and rules.yaml relative to
# the source tree (orglife.common.config.REPO_ROOT): a plain `pip install --no-deps .` puts the
# code in site-packages without them and `migrate` fails.
COPY pyproject.toml ./
COPY src ./src
COPY services ./services
COPY deploy/migrate.py ./deploy/migrate.py
# Every service of the system declaration (src/orglife/system.py) must import.
RUN pip install --no-deps -e . \
    && python -m orglife.system --check

# Run as an unprivileged account; its home is ORGLIFE_HOME (the only place orglife writes).
RUN groupadd --system --gid 10001 orglife \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/orglife --create-home \
        --shell /usr/sbin/nologin orglife
USER 10001:10001
ENV ORGLIFE_HOME=/var/lib/orglife

ENTRYPOINT ["python", "-m", "orglife.runner"]
CMD ["members"]
