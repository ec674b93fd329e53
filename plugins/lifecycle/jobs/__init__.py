"""Glue-style jobs (PySpark DataFrame API) and their runner.

Input/output per job: see each module's docstring. ``lifecycle.jobs.engine.runner`` runs them
locally on DuckDB through SQLFrame; a job module must be imported only through the runner,
which activates SQLFrame before the job's ``pyspark`` imports.
"""
