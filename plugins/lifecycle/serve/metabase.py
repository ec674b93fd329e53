"""Provision the Metabase dashboard from the repo, through Metabase's REST API.

Input: ``Settings`` (``metabase_url``, the first admin's e-mail and password, the warehouse's
host, port and database, the ``bi_reader`` credentials) and the dashboard spec
``infra/metabase/dashboard.json`` (a database, a collection, a dashboard and its cards: native
SQL on schema ``serving``, chart type, chart settings, grid position).
Output: in Metabase, the first admin (``/api/setup``, only on a fresh instance), the warehouse
as a database connected as ``bi_reader`` and limited to schema ``serving``, a collection with
one saved question per card and the dashboard laying them out. Returns the ids and the
dashboard's URL.

Idempotent: objects are found by name (database; cards and dashboard inside the collection)
and updated in place, and the dashboard's cards are replaced by exactly the spec's, so a
rerun changes nothing and a change of the spec is applied. Used by the compose service
``metabase-provision`` (``docker compose --profile bi up``) and ``lifecycle metabase-provision``.
Standard library only (urllib), so it runs in any image that has the package.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from lifecycle.settings import REPO_ROOT, Settings

SPEC_PATH = REPO_ROOT / "infra" / "metabase" / "dashboard.json"
DISPLAYS = {"bar", "row", "line", "area", "pie", "funnel", "scalar", "table", "combo", "scatter"}


class MetabaseError(RuntimeError):
    """Metabase refused a call or never came up; the message says which and why."""


def load_spec(path: str | Path | None = None) -> dict:
    """The dashboard spec, checked: unique keys, known chart types, SQL on ``serving`` only."""
    spec = json.loads(Path(path or SPEC_PATH).read_text())
    keys = [c["key"] for c in spec["cards"]]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate card keys in the spec: {keys}")
    for card in spec["cards"]:
        if card["display"] not in DISPLAYS:
            raise ValueError(f"card {card['key']}: unknown display {card['display']!r}")
        if f"{spec['database']['schema']}." not in card["sql"]:
            raise ValueError(f"card {card['key']}: the SQL must read schema {spec['database']['schema']}")
        for field in ("row", "col", "size_x", "size_y"):
            int(card["layout"][field])
    return spec


class Client:
    """A minimal Metabase API client: JSON in and out, session header once logged in."""

    def __init__(self, base_url: str, timeout: float = 60):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.session: str | None = None

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.session:
            req.add_header("X-Metabase-Session", self.session)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise MetabaseError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                if (self.call("GET", "/api/health") or {}).get("status") == "ok":
                    return
            except (OSError, MetabaseError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise MetabaseError(f"Metabase at {self.base} is not healthy after {timeout:.0f} s ({last})")
            time.sleep(2)


def _items(payload) -> list[dict]:
    """Metabase lists come bare or as ``{"data": [...]}`` depending on the endpoint/version."""
    if isinstance(payload, dict):
        return payload.get("data") or []
    return payload or []


def login(client: Client, settings: Settings, site_name: str) -> str:
    """Create the first admin on a fresh Metabase (``/api/setup``), else log in as that admin."""
    if not settings.services.metabase_admin_password:
        raise MetabaseError("set LIFECYCLE_METABASE_ADMIN_PASSWORD (the first admin's password)")
    props = client.call("GET", "/api/session/properties") or {}
    if not props.get("has-user-setup") and props.get("setup-token"):
        out = client.call("POST", "/api/setup", {
            "token": props["setup-token"],
            "user": {"first_name": "Lifecycle", "last_name": "Admin", "email": settings.services.metabase_admin_email,
                     "password": settings.services.metabase_admin_password, "site_name": site_name},
            "prefs": {"site_name": site_name, "site_locale": "en", "allow_tracking": False},
        })
    else:
        out = client.call("POST", "/api/session", {"username": settings.services.metabase_admin_email,
                                                   "password": settings.services.metabase_admin_password})
    client.session = out["id"]
    return client.session


def ensure_database(client: Client, settings: Settings, spec: dict) -> int:
    """The warehouse, connected as the read-only ``bi_reader``, showing schema ``serving`` only."""
    db = spec["database"]
    details = {
        "host": settings.pg.host, "port": settings.pg.port, "dbname": settings.pg.warehouse_db,
        "user": settings.pg.bi_reader_user, "password": settings.pg.bi_reader_password or "",
        "ssl": settings.target == "aws",
        "schema-filters-type": "inclusion", "schema-filters-patterns": db["schema"],
    }
    body = {"engine": db["engine"], "name": db["name"], "details": details, "is_full_sync": True}
    existing = next((d for d in _items(client.call("GET", "/api/database")) if d.get("name") == db["name"]), None)
    if existing:
        client.call("PUT", f"/api/database/{existing['id']}", body)
        db_id = existing["id"]
    else:
        db_id = client.call("POST", "/api/database", body)["id"]
    client.call("POST", f"/api/database/{db_id}/sync_schema")
    return db_id


def ensure_collection(client: Client, name: str) -> int:
    found = next((c for c in _items(client.call("GET", "/api/collection"))
                  if c.get("name") == name and not c.get("archived")), None)
    if found:
        return found["id"]
    return client.call("POST", "/api/collection", {"name": name, "color": "#509EE3",
                                                   "description": "Provisioned from the repo"})["id"]


def _collection_items(client: Client, collection_id: int, model: str) -> dict[str, int]:
    items = _items(client.call("GET", f"/api/collection/{collection_id}/items?models={model}"))
    return {i["name"]: i["id"] for i in items if i.get("model", model) == model}


def ensure_cards(client: Client, spec: dict, db_id: int, collection_id: int) -> dict[str, int]:
    """One native-SQL question per card of the spec; returns ``{card key: card id}``."""
    existing = _collection_items(client, collection_id, "card")
    ids = {}
    for card in spec["cards"]:
        body = {
            "name": card["name"], "description": card.get("description"), "display": card["display"],
            "visualization_settings": card.get("visualization_settings", {}),
            "dataset_query": {"type": "native", "database": db_id,
                              "native": {"query": card["sql"], "template-tags": {}}},
            "collection_id": collection_id,
        }
        if card["name"] in existing:
            ids[card["key"]] = existing[card["name"]]
            client.call("PUT", f"/api/card/{ids[card['key']]}", body)
        else:
            ids[card["key"]] = client.call("POST", "/api/card", body)["id"]
    return ids


def ensure_dashboard(client: Client, spec: dict, card_ids: dict[str, int], collection_id: int) -> int:
    """The dashboard with exactly the spec's cards at the spec's positions."""
    dash = spec["dashboard"]
    existing = _collection_items(client, collection_id, "dashboard")
    if dash["name"] in existing:
        dash_id = existing[dash["name"]]
    else:
        dash_id = client.call("POST", "/api/dashboard", {"name": dash["name"], "description": dash.get("description"),
                                                         "collection_id": collection_id})["id"]
    current = client.call("GET", f"/api/dashboard/{dash_id}") or {}
    by_card = {dc.get("card_id"): dc["id"] for dc in current.get("dashcards") or [] if dc.get("card_id")}
    dashcards = []
    for n, card in enumerate(spec["cards"], start=1):
        card_id = card_ids[card["key"]]
        dashcards.append({"id": by_card.get(card_id, -n), "card_id": card_id, **card["layout"],
                          "parameter_mappings": [], "visualization_settings": {}})
    client.call("PUT", f"/api/dashboard/{dash_id}", {"name": dash["name"], "description": dash.get("description"),
                                                      "dashcards": dashcards})
    return dash_id


def provision(settings: Settings, spec_path: str | Path | None = None, wait_seconds: float = 300) -> dict:
    """Everything above, in order. Returns ids and the dashboard URL."""
    spec = load_spec(spec_path)
    client = Client(settings.services.metabase_url)
    client.wait_healthy(wait_seconds)
    login(client, settings, spec["dashboard"]["name"])
    db_id = ensure_database(client, settings, spec)
    collection_id = ensure_collection(client, spec["collection"])
    card_ids = ensure_cards(client, spec, db_id, collection_id)
    dash_id = ensure_dashboard(client, spec, card_ids, collection_id)
    return {"database_id": db_id, "collection_id": collection_id, "cards": card_ids, "dashboard_id": dash_id,
            "url": f"{settings.services.metabase_url.rstrip('/')}/dashboard/{dash_id}"}
