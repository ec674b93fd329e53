"""The pgoutput decoder of the CDC stage on hand-built protocol messages (no Postgres).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest


def _tuple(*values):
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        else:
            b = str(v).encode()
            out += b"t" + struct.pack("!i", len(b)) + b
    return out


def test_pgoutput_decodes_relation_insert_update_with_old_key_and_delete():
    from lifecycle.ingest.pgoutput import Change, Commit, Relation, decode

    rel = decode(b"R" + struct.pack("!I", 16385) + b"public\x00orders\x00" + b"d" + struct.pack("!h", 2)
                 + b"\x01order_id\x00" + struct.pack("!Ii", 20, -1)
                 + b"\x00status\x00" + struct.pack("!Ii", 25, -1))
    assert isinstance(rel, Relation) and rel.name == "orders"
    assert [(c.name, c.is_key) for c in rel.columns] == [("order_id", True), ("status", False)]

    ins = decode(b"I" + struct.pack("!I", 16385) + b"N" + _tuple(7, "placed"))
    assert isinstance(ins, Change) and ins.op == "I" and ins.new == ["7", "placed"]

    upd = decode(b"U" + struct.pack("!I", 16385) + b"K" + _tuple(7, None) + b"N" + _tuple(8, "paid"))
    assert upd.op == "U" and upd.old == ["7", None] and upd.old_kind == "K" and upd.new == ["8", "paid"]

    dele = decode(b"D" + struct.pack("!I", 16385) + b"K" + _tuple(8, None))
    assert dele.op == "D" and dele.old == ["8", None]

    commit = decode(b"C\x00" + struct.pack("!qqq", 100, 200, 86_400_000_000))
    assert isinstance(commit, Commit) and commit.end_lsn == 200
    assert commit.commit_ts == datetime(2000, 1, 2, tzinfo=UTC)


def test_pgoutput_refuses_unchanged_toast_instead_of_writing_nulls():
    from lifecycle.ingest.pgoutput import UnchangedToast, decode

    with pytest.raises(UnchangedToast):
        decode(b"U" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"u")


def test_lsn_round_trip():
    from lifecycle.ingest.pgoutput import lsn_to_str, str_to_lsn

    assert lsn_to_str(str_to_lsn("16/B374D848")) == "16/B374D848"
