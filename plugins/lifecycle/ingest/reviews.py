"""DynamoDB `product_reviews` → raw zone, in the layout of DynamoDB's export to S3.

Input: ``Settings`` and the export's point in time (the end of the data interval).
Output: ``reviews/AWSDynamoDB/<exportId>/data/part-00000.json`` (one ``{"Item": ...}`` in
DynamoDB JSON per line) and ``manifest-summary.json`` next to it. ``exportId`` is derived
from the point in time, so rerunning an interval overwrites the same export.

On AWS, ``ExportTableToPointInTime`` (or the Amazon provider's
``DynamoDBToS3Operator`` with ``point_in_time_export``) writes the same layout; moto does
not run exports, so here a paginated scan stands in for it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lifecycle.clients import aws
from lifecycle.settings import Settings


def export_id(point_in_time: datetime) -> str:
    return point_in_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run(settings: Settings, point_in_time: datetime) -> dict:
    ddb, s3 = aws(settings, "dynamodb"), aws(settings, "s3")
    lines: list[str] = []
    for page in ddb.get_paginator("scan").paginate(TableName=settings.reviews_table, ConsistentRead=True):
        lines.extend(json.dumps({"Item": item}, sort_keys=True) for item in page["Items"])
    lines.sort()  # deterministic object content for the same table state
    prefix = f"reviews/AWSDynamoDB/{export_id(point_in_time)}"
    bucket = settings.bucket("raw")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/data/part-00000.json",
                  Body=("\n".join(lines) + ("\n" if lines else "")).encode())
    table_arn = ddb.describe_table(TableName=settings.reviews_table)["Table"]["TableArn"]
    manifest = {"exportTime": point_in_time.astimezone(UTC).isoformat(), "itemCount": len(lines),
                "tableArn": table_arn, "outputFormat": "DYNAMODB_JSON"}
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest-summary.json", Body=json.dumps(manifest).encode())
    return {"export_id": export_id(point_in_time), "items": len(lines), "rows_out": len(lines),
            "files_written": 2}
