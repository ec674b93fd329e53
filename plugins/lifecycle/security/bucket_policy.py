"""The bucket policy every lake bucket gets from ``lifecycle infra apply``.

Input: ``Settings``, the bucket name, the account id and the bucket's entry of
``infra/resources.yaml`` (``deny_pipeline_deletes: true`` on ``raw``).
Output: a bucket policy document (dict) with Deny statements only, so it never makes a
bucket public and Block Public Access (``BlockPublicPolicy``) accepts it.

Encryption: the AWS-documented pattern for buckets with default encryption. Default
encryption (SSE-S3, set by ``infra.apply_buckets``) encrypts every object whose PUT carries
no ``x-amz-server-side-encryption`` header, so the policy denies only a PUT that *sends* the
header with another value (``Null: false`` = the header is present). The older pattern that
also denies a PUT *without* the header would refuse DuckDB httpfs and awswrangler writes
(they send no SSE header) although S3 encrypts those objects anyway.
"""

from __future__ import annotations

from lifecycle.settings import Settings

ALLOWED_SSE = ["AES256", "aws:kms"]


def pipeline_role_pattern(settings: Settings, account: str) -> str:
    """ARN pattern of every role ``infra apply`` creates (``<prefix>-<stage>``)."""
    return f"arn:aws:iam::{account}:role/{settings.names.prefix}-*"


def bucket_policy(settings: Settings, bucket: str, account: str, spec: dict) -> dict:
    arn = f"arn:aws:s3:::{bucket}"
    statements = [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyWrongEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"{arn}/*",
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": ALLOWED_SSE},
                       "Null": {"s3:x-amz-server-side-encryption": "false"}}},
    ]
    if spec.get("deny_pipeline_deletes"):
        roles = pipeline_role_pattern(settings, account)
        # no pipeline role may lose history: no version deletes, no un-versioning, no expiry
        statements.append(
            {"Sid": "DenyPipelineHistoryLoss", "Effect": "Deny", "Principal": "*",
             "Action": ["s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
                        "s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:PutBucketPolicy"],
             "Resource": [arn, f"{arn}/*"], "Condition": {"ArnLike": {"aws:PrincipalArn": roles}}})
        # and no deletes at all: raw is append-only for the pipeline
        statements.append(
            {"Sid": "DenyPipelineDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
             "Resource": f"{arn}/*", "Condition": {"ArnLike": {"aws:PrincipalArn": roles}}})
    return {"Version": "2012-10-17", "Statement": statements}
