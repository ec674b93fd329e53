"""Decoder for PostgreSQL's ``pgoutput`` logical-replication protocol, version 1.

Input: the binary messages of ``pg_logical_slot_peek_binary_changes(...)`` (one bytes value
per row). Output: ``Begin``/``Commit``/``Relation``/``Change`` objects.

Written by hand on purpose: the decoders on PyPI are unmaintained (pypgoutput 0.0.3, 2022,
depends on the source-only psycopg2) or live inside other tools, and protocol v1 has only
nine message types (B, C, R, I, U, D, T, Y, O); see the PostgreSQL docs, "Logical
Replication Message Formats".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def lsn_to_str(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass
class Begin:
    final_lsn: int
    commit_ts: datetime
    xid: int


@dataclass
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ts: datetime


@dataclass
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str
    columns: list[Column] = field(default_factory=list)


@dataclass
class Change:
    op: str                      # "I", "U", "D"
    relation_oid: int
    new: list[str | None] | None  # text values, None = SQL NULL
    old: list[str | None] | None  # old key (K) or old row (O) when the protocol sends it
    old_kind: str | None = None  # "K" or "O"


@dataclass
class Truncate:
    relation_oids: list[int]


class UnchangedToast(Exception):
    """An 'u' column: the value was not sent because it did not change (REPLICA IDENTITY DEFAULT)."""


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def u8(self) -> int:
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def i16(self) -> int:
        (v,) = struct.unpack_from("!h", self.buf, self.pos)
        self.pos += 2
        return v

    def i32(self) -> int:
        (v,) = struct.unpack_from("!i", self.buf, self.pos)
        self.pos += 4
        return v

    def u32(self) -> int:
        (v,) = struct.unpack_from("!I", self.buf, self.pos)
        self.pos += 4
        return v

    def i64(self) -> int:
        (v,) = struct.unpack_from("!q", self.buf, self.pos)
        self.pos += 8
        return v

    def cstr(self) -> str:
        end = self.buf.index(b"\x00", self.pos)
        v = self.buf[self.pos:end].decode()
        self.pos = end + 1
        return v

    def ts(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.i64())

    def tuple_data(self) -> list[str | None]:
        # the hot loop of CDC (once per column of every change): locals and precompiled
        # structs instead of the helpers above, ~2x faster here
        buf, pos = self.buf, self.pos
        (n,) = _I16.unpack_from(buf, pos)
        pos += 2
        out: list[str | None] = []
        append = out.append
        for _ in range(n):
            kind = buf[pos]
            pos += 1
            if kind == 110:  # "n": NULL
                append(None)
            elif kind == 117:  # "u": unchanged TOAST
                raise UnchangedToast("unchanged TOASTed value; set REPLICA IDENTITY FULL on the table")
            else:  # "t" text (or "b" binary, which we never request)
                (length,) = _I32.unpack_from(buf, pos)
                pos += 4
                append(buf[pos:pos + length].decode())
                pos += length
        self.pos = pos
        return out


_I16, _I32 = struct.Struct("!h"), struct.Struct("!i")


def decode(message: bytes):
    """Decode one pgoutput v1 message. Returns None for types we do not need (Y, O)."""
    r = _Reader(bytes(message))
    kind = chr(r.u8())
    if kind == "B":
        return Begin(final_lsn=r.i64(), commit_ts=r.ts(), xid=r.u32())
    if kind == "C":
        r.u8()  # flags
        return Commit(commit_lsn=r.i64(), end_lsn=r.i64(), commit_ts=r.ts())
    if kind == "R":
        rel = Relation(oid=r.u32(), schema=r.cstr(), name=r.cstr(), replica_identity=chr(r.u8()))
        for _ in range(r.i16()):
            flags = r.u8()
            name = r.cstr()
            rel.columns.append(Column(name=name, type_oid=r.u32(), typmod=r.i32(), is_key=bool(flags & 1)))
        return rel
    if kind == "I":
        oid = r.u32()
        r.u8()  # 'N'
        return Change("I", oid, new=r.tuple_data(), old=None)
    if kind == "U":
        oid = r.u32()
        marker = chr(r.u8())
        old, old_kind = None, None
        if marker in ("K", "O"):
            old, old_kind = r.tuple_data(), marker
            marker = chr(r.u8())
        return Change("U", oid, new=r.tuple_data(), old=old, old_kind=old_kind)
    if kind == "D":
        oid = r.u32()
        marker = chr(r.u8())
        return Change("D", oid, new=None, old=r.tuple_data(), old_kind=marker)
    if kind == "T":
        n = r.u32()
        r.u8()  # options
        return Truncate([r.u32() for _ in range(n)])
    return None  # Y (type), O (origin), M (message): nothing to replicate
