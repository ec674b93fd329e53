"""Quoting for the SQL the package writes itself (DuckDB, Postgres, Redshift, Athena).

Input: a name or a value. Output: ``ident(name)`` a double-quoted identifier, ``literal(value)``
a single-quoted string literal, each with its quote character doubled (the SQL standard's
escape, the same in every engine here). For values a driver can bind (psycopg2's ``%s``),
bind them instead; these are for what cannot be bound: identifiers, DuckDB ``COPY`` paths,
``CREATE SECRET`` options, statements sent to the Redshift Data API.
"""

from __future__ import annotations


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
