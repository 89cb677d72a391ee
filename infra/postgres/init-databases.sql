-- Run once by the postgres image on an empty data volume: Prefect uses the default database
-- (POSTGRES_DB=prefect), MLflow gets its own so the two schemas never meet.
CREATE DATABASE mlflow OWNER metacot;
