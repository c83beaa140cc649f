#!/bin/bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one
# database per service (SPEC §5), owned by a role of the service's own that can reach no other
# service's database (SPEC §7). Passwords come from <SERVICE>_DB_PASSWORD.
set -euo pipefail

create_service_database() {
    local service="$1" password="$2"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        --set=role="$service" --set=password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
}

create_service_database members "$MEMBERS_DB_PASSWORD"
create_service_database meetings "$MEETINGS_DB_PASSWORD"
create_service_database scoring "$SCORING_DB_PASSWORD"
create_service_database notifications "$NOTIFICATIONS_DB_PASSWORD"
