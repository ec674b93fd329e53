"""The Metabase provisioner against a small in-memory Metabase (no Docker here).

The fake implements the few endpoints the provisioner calls, with Metabase's shapes, and
records every call. Checked: a fresh instance gets its first admin through ``/api/setup``
with the setup token; the warehouse is added as ``bi_reader`` limited to schema ``serving``;
one native-SQL card per spec card; the dashboard lays them out as the spec says; a second
run logs in, creates nothing and keeps every id (idempotent). The spec's SQL itself is
run for real as ``bi_reader`` in ``tests/serve/test_serving.py``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lifecycle.serve import metabase
from lifecycle.settings import PostgresSettings, Services, Settings


class FakeMetabase:
    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []
        self.setup_done = False
        self.users: dict[str, str] = {}
        self.tables: dict[str, dict[int, dict]] = {"database": {}, "collection": {}, "card": {},
                                                   "dashboard": {}}
        self.next_id = 1

    def _new(self, kind: str, body: dict) -> dict:
        obj = {**body, "id": self.next_id}
        self.next_id += 1
        if kind == "dashboard":
            obj["dashcards"] = []
        self.tables[kind][obj["id"]] = obj
        return obj

    def handle(self, method: str, path: str, body: dict | None, session: str | None):
        self.calls.append((method, path, body))
        route = path.split("?")[0]
        if route == "/api/health":
            return 200, {"status": "ok"}
        if route == "/api/session/properties":
            return 200, {"has-user-setup": self.setup_done, "setup-token": "tok-123"}
        if route == "/api/setup" and method == "POST":
            if self.setup_done or body["token"] != "tok-123":
                return 403, {"message": "setup already done"}
            self.setup_done = True
            self.users[body["user"]["email"]] = body["user"]["password"]
            return 200, {"id": "session-1"}
        if route == "/api/session" and method == "POST":
            if self.users.get(body["username"]) != body["password"]:
                return 401, {"errors": {"password": "did not match"}}
            return 200, {"id": "session-2"}
        if session not in ("session-1", "session-2"):
            return 401, "Unauthenticated"
        m = re.fullmatch(r"/api/(database|collection|card|dashboard)(?:/(\d+))?(?:/(\w+))?", route)
        if not m:
            return 404, "not found"
        kind, ident, sub = m.group(1), m.group(2), m.group(3)
        table = self.tables[kind]
        if ident is None:
            if method == "GET":
                items = list(table.values())
                return 200, {"data": items, "total": len(items)} if kind == "database" else items
            return 200, self._new(kind, body)
        obj = table[int(ident)]
        if kind == "database" and sub == "sync_schema":
            return 200, {"status": "ok"}
        if kind == "collection" and sub == "items":
            models = re.findall(r"models=(\w+)", path)
            items = [{"id": o["id"], "name": o["name"], "model": k} for k in ("card", "dashboard")
                     if k in models for o in self.tables[k].values() if o.get("collection_id") == obj["id"]]
            return 200, {"data": items, "total": len(items)}
        if method == "GET":
            return 200, obj
        if method == "PUT":
            if kind == "dashboard" and "dashcards" in body:
                cards = []
                for dc in body["dashcards"]:
                    dc = dict(dc)
                    if dc["id"] < 0:
                        dc["id"] = self.next_id
                        self.next_id += 1
                    cards.append(dc)
                body = {**body, "dashcards": cards}
            obj.update(body)
            return 200, obj
        return 405, "method not allowed"


@pytest.fixture
def fake():
    state = FakeMetabase()

    class Handler(BaseHTTPRequestHandler):
        def _do(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            code, out = state.handle(self.command, self.path, body, self.headers.get("X-Metabase-Session"))
            raw = json.dumps(out).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _do

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(url: str, admin_password: str | None = "admin-pw-1") -> Settings:
    return Settings(services=Services(metabase_url=url, metabase_admin_password=admin_password),
                    pg=PostgresSettings(bi_reader_password="reader-pw", host="postgres", port=5432))


def test_first_run_sets_up_metabase_and_builds_the_dashboard(fake):
    state, url = fake
    spec = metabase.load_spec()
    out = metabase.provision(_settings(url), wait_seconds=10)
    setup = next(b for m, p, b in state.calls if p == "/api/setup")
    assert setup["token"] == "tok-123" and setup["user"]["email"] == "admin@lifecycle.local"
    (db,) = state.tables["database"].values()
    assert db["engine"] == "postgres" and db["name"] == spec["database"]["name"]
    details = db["details"]
    assert (details["host"], details["port"], details["dbname"]) == ("postgres", 5432, "warehouse")
    assert (details["user"], details["password"]) == ("bi_reader", "reader-pw")
    assert details["schema-filters-type"] == "inclusion" and details["schema-filters-patterns"] == "serving"
    assert ("POST", f"/api/database/{db['id']}/sync_schema", None) in state.calls
    cards = {c["name"]: c for c in state.tables["card"].values()}
    assert set(cards) == {c["name"] for c in spec["cards"]}
    for c in spec["cards"]:
        made = cards[c["name"]]
        assert made["display"] == c["display"]
        assert made["dataset_query"] == {"type": "native", "database": db["id"],
                                         "native": {"query": c["sql"], "template-tags": {}}}
        assert made["collection_id"] == out["collection_id"]
    (dash,) = state.tables["dashboard"].values()
    assert dash["name"] == "Sales platform" and out["dashboard_id"] == dash["id"]
    placed = {(dc["card_id"], dc["row"], dc["col"], dc["size_x"], dc["size_y"]) for dc in dash["dashcards"]}
    assert placed == {(out["cards"][c["key"]], *(c["layout"][k] for k in ("row", "col", "size_x", "size_y")))
                      for c in spec["cards"]}
    assert out["url"] == f"{url}/dashboard/{dash['id']}"


def test_a_second_run_logs_in_creates_nothing_and_keeps_the_ids(fake):
    state, url = fake
    first = metabase.provision(_settings(url), wait_seconds=10)
    dashcards = [dc["id"] for dc in state.tables["dashboard"][first["dashboard_id"]]["dashcards"]]
    state.calls.clear()
    again = metabase.provision(_settings(url), wait_seconds=10)
    assert again == first
    posts = [p for m, p, _ in state.calls if m == "POST"]
    assert "/api/setup" not in posts and "/api/session" in posts
    assert not {"/api/database", "/api/card", "/api/dashboard", "/api/collection"} & set(posts)
    assert [dc["id"] for dc in state.tables["dashboard"][first["dashboard_id"]]["dashcards"]] == dashcards
    assert len(state.tables["card"]) == len(metabase.load_spec()["cards"])


def test_wrong_admin_password_and_missing_settings_say_what_to_do(fake):
    state, url = fake
    metabase.provision(_settings(url), wait_seconds=10)
    with pytest.raises(metabase.MetabaseError, match="HTTP 401"):
        metabase.provision(_settings(url, "wrong"), wait_seconds=10)
    with pytest.raises(metabase.MetabaseError, match="LIFECYCLE_METABASE_ADMIN_PASSWORD"):
        metabase.provision(_settings(url, None), wait_seconds=10)


def test_an_unreachable_metabase_fails_with_a_clear_message():
    with pytest.raises(metabase.MetabaseError, match="not healthy after"):
        metabase.Client("http://127.0.0.1:1", timeout=1).wait_healthy(0)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s["cards"].append(dict(s["cards"][0])), "duplicate card keys"),
    (lambda s: s["cards"][0].update(display="sparkle"), "unknown display"),
    (lambda s: s["cards"][0].update(sql="SELECT * FROM marts.fct_orders"), "must read schema serving"),
])
def test_spec_validation(tmp_path, mutate, message):
    spec = json.loads(metabase.SPEC_PATH.read_text())
    mutate(spec)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message):
        metabase.load_spec(path)


def test_settings_point_the_provisioner_at_the_compose_metabase():
    s = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://localstack:4566",
                           "LIFECYCLE_METABASE_ADMIN_PASSWORD": "x", "LIFECYCLE_BI_READER_PASSWORD": "y"})
    assert s.services.metabase_url == "http://metabase:3000"
    assert (s.services.metabase_admin_password, s.pg.bi_reader_password, s.pg.bi_reader_user) == ("x", "y", "bi_reader")
