"""The AWS Glue entry script: runs one job module of ``lifecycle.jobs`` on Glue's Spark.

Input (Glue job arguments): ``--JOB_NAME`` (the Glue job), ``--lifecycle_job`` (the module,
e.g. ``clean_sales``), ``--clean_database`` and ``--curated_database`` (where the Iceberg tables are committed) and
the job's own arguments (``--raw_bucket ...``, from the job definition's DefaultArguments and
the run's arguments); the ``lifecycle`` package comes
from ``--extra-py-files`` (``lifecycle.jobs.glue.deploy`` uploads both).
Output: what the job writes, through ``SparkJobContext`` on ``S3Lake`` (``s3://`` read and
written by Glue's own S3 connector; boto3 for listings and the PII salt).

Only runs on AWS Glue (``awsglue`` exists there only); it is deliberately thin: the
transformation is the job module, the reads/writes are ``SparkJobContext``'s.
"""

import sys


def main() -> None:
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    from lifecycle.jobs.engine.contract import job_module
    from lifecycle.jobs.engine.spark_context import SparkJobContext, spark_compat
    from lifecycle.jobs.engine.spark_lake import S3Lake

    args = getResolvedOptions(sys.argv, ["JOB_NAME", "lifecycle_job", "clean_database", "curated_database"])
    glue = GlueContext(SparkContext.getOrCreate())
    spark = glue.spark_session
    # as the local engines: dates of timestamps are UTC, Parquet timestamps are standard
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    spark_compat()  # Glue 5.0 is Spark 3.5: before the job module is imported
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    # the Glue database of each Iceberg zone (the job definition's DefaultArguments)
    databases = {"clean": args["clean_database"], "curated": args["curated_database"]}
    ctx = SparkJobContext(spark, S3Lake(databases=databases), args["lifecycle_job"])
    try:
        job_module(args["lifecycle_job"]).main(sys.argv, ctx)
    finally:
        ctx.close()
    print({"job": args["lifecycle_job"], **ctx.metrics})  # lands in the job's CloudWatch log
    job.commit()


if __name__ == "__main__":
    main()
