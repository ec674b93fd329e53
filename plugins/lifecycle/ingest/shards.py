"""Shard order for the stream readers (Kinesis Data Streams, DynamoDB Streams).

Input: the shards a ``ListShards`` / ``DescribeStream`` listed. Output: the same shards,
parents before children, so a reader drains a parent shard before the shards it split or
merged into (the KCL's rule after resharding). A Kinesis merge names two parents
(``ParentShardId``, ``AdjacentParentShardId``); a DynamoDB Streams shard has one.
"""

from __future__ import annotations


def parents_first(shards: list[dict]) -> list[dict]:
    by_id = {s["ShardId"]: s for s in shards}
    ordered, seen = [], set()

    def visit(s):
        if s["ShardId"] in seen:
            return
        seen.add(s["ShardId"])
        for parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId")):
            if parent in by_id:
                visit(by_id[parent])
        ordered.append(s)

    for s in sorted(shards, key=lambda s: s["ShardId"]):
        visit(s)
    return ordered
