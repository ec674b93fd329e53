-- First-start initialisation of the compose Postgres (docker-entrypoint-initdb.d).
-- Runs once, as POSTGRES_USER, only when the data volume is empty; after a change here,
-- reset with `docker compose down -v`.
--
-- (sales, the RDS stand-in, is the separate service sales-db on the `sources` network)
-- warehouse : the Redshift stand-in (dbt target, `serving` schema for BI)
-- airflow   : Airflow's metadata database
-- Same databases and extension as the embedded target (lifecycle.ops.services.ensure_databases).
CREATE DATABASE warehouse;
CREATE DATABASE airflow;

-- pgvector (shipped in the pgvector/pgvector image) for product embeddings.
\connect warehouse
CREATE EXTENSION IF NOT EXISTS vector;
