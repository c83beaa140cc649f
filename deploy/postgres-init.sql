-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
-- one database per service (SPEC §5), owned by POSTGRES_USER, who runs this script.
-- scoring and notifications are created now so their services need no change here later.
CREATE DATABASE members;
CREATE DATABASE meetings;
CREATE DATABASE scoring;
CREATE DATABASE notifications;
