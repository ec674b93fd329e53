"""The HTML pages the lifecycle publishes: the serving dashboard and the observability page.

Input: ``Settings``, the page's HTML, a local path and a name. Output: the page written to the
local path and to ``s3://<serving>/dashboard/<name>`` (served from the serving bucket, where
a BI user or CloudFront would read it); returns both locations.
"""

from __future__ import annotations

from lifecycle.clients import aws
from lifecycle.settings import Settings


def write_page(settings: Settings, page: str, path, name: str) -> tuple[str, str]:
    """Write an HTML page to ``path`` and to ``s3://<serving>/dashboard/<name>``; returns both."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    key = f"dashboard/{name}"
    aws(settings, "s3").put_object(Bucket=settings.names.bucket("serving"), Key=key, Body=page.encode(),
                                   ContentType="text/html")
    return str(path), f"s3://{settings.names.bucket('serving')}/{key}"
