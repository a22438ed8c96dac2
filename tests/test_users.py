"""Users kept apart (issue 27 part 6): one real `evo serve` on loopback with SmolLM2 and several users' keys,
talked to with httpx and the `openai` package. What one user tells the assistant (a memory, a fact captured
from a chat turn) never reaches another user's prompt, search, list or export; another user's ids answer
exactly like ids that do not exist; only admins manage users; a removed key is refused; erasing one user
leaves the others' data as it was, and the erased text leaves the store files. Nothing is mocked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import report_row, run_evo
from .test_serve import _env, start_server, stop

OWNER_KEY = "owner-key-5b1e77"
TITLE = "Users kept apart"
ZERRIN = "Benim adım Zerrin."  # captured as "Kullanıcının adı Zerrin." (memory/facts.py, tr_name)
A_COLOUR = "En sevdiğim renk lacivert."


class U:
    """One user's clients."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        self.ai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)

    def ask(self, text: str, session: str | None = None) -> dict:
        headers = {"X-Session-Id": session} if session else {}
        r = self.ai.chat.completions.create(model="evo-tr", messages=[{"role": "user", "content": text}], temperature=0, seed=0,
                                            max_tokens=8, extra_headers=headers)
        return r.model_extra["evo"]

    def memories(self) -> dict[str, dict]:
        r = self.http.get("/v1/evo/memories", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return {m["id"]: m for m in r.json()["memories"]}


def _key(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["key"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The server (EVO_API_KEY = the owner) with alice (added by the CLI before start) and bob and root (an admin;
    added over the API by the owner)."""
    home = tmp_path_factory.mktemp("users-home")
    env = _env(home, None, {})
    proc = run_evo("models", "list", env=env)  # provisions the test model in this home
    assert proc.returncode == 0, proc.stderr
    alice_key = _key(run_evo("users", "add", "Alice", "--json", env=env))
    srv = start_server(home, key=OWNER_KEY)
    owner = U(srv.url, OWNER_KEY)
    keys = {"alice": alice_key}
    for name, admin in (("bob", False), ("root", True)):
        r = owner.http.post("/v1/evo/users", json={"name": name, "admin": admin})
        assert r.status_code == 200, r.text
        keys[name] = r.json()["key"]
    users = {name: U(srv.url, key) for name, key in keys.items()}
    users["owner"] = owner
    yield srv, users, env
    stop(srv)


class Tally:
    def __init__(self, check: str) -> None:
        self.check, self.tries, self.leaks, self.what = check, 0, 0, []

    def ok(self, fine: bool, what: str) -> None:
        self.tries += 1
        if not fine:
            self.leaks += 1
            self.what.append(what)

    def report(self) -> None:
        report_row(TITLE, {"check": self.check, "tries": self.tries, "leaks": self.leaks})
        assert self.leaks == 0, self.what


def test_admin_routes_are_for_admins_and_every_request_needs_a_key(world):
    srv, u, _ = world
    t = Tally("admin routes, keys")
    for who in ("owner", "root"):
        r = u[who].http.get("/v1/evo/users")
        t.ok(r.status_code == 200 and {"alice", "bob", "root"} <= {x["name"] for x in r.json()["users"]}, f"{who} lists users")
    for who in ("alice", "bob"):
        t.ok(u[who].http.get("/v1/evo/users").status_code == 403, f"{who} GET users")
        t.ok(u[who].http.post("/v1/evo/users", json={"name": "mallory", "admin": True}).status_code == 403, f"{who} POST users")
        t.ok(u[who].http.delete("/v1/evo/users/alice").status_code == 403, f"{who} DELETE users")
        t.ok(u[who].http.post("/v1/evo/adapters/tr_chat/rollback").status_code == 403, f"{who} adapter rollback")
        t.ok(u[who].http.get("/v1/evo/proposals").status_code == 403, f"{who} proposals")
        t.ok(u[who].http.get("/v1/evo/nights").status_code == 403, f"{who} nights")
        me = u[who].http.get("/v1/evo/me").json()
        t.ok(me["name"] == who and me["admin"] is False and me["via"] == "user-key", f"{who} /me")
    me = u["owner"].http.get("/v1/evo/me").json()
    t.ok((me["name"], me["admin"], me["via"]) == ("owner", True, "api-key"), "owner /me")
    with httpx.Client(base_url=srv.url, timeout=30) as anonymous:
        t.ok(anonymous.get("/v1/evo/memories").status_code == 401, "no key")
        t.ok(anonymous.get("/v1/evo/memories", headers={"Authorization": "Bearer evo-not-a-key"}).status_code == 401, "wrong key")
        t.ok("evo-page-token" not in anonymous.get("/").text, "page token with users")  # the page asks for the key instead
    t.report()


def test_what_a_tells_is_never_recalled_searched_listed_or_exported_for_b(world):
    _, u, _ = world
    a, b = u["alice"], u["bob"]
    t = Tally("A's facts in B's view")
    added = a.http.post("/v1/evo/memories", json={"text": A_COLOUR})
    assert added.status_code == 200, added.text
    colour_id = added.json()["id"]
    a.ask(ZERRIN, session="a-private")  # the fact is captured from the turn, as alice's
    mine = a.memories()
    zerrin_id = next(i for i, m in mine.items() if m["type"] == "fact" and "Zerrin" in m["text"])
    assert mine[zerrin_id]["session"] == "a-private" and mine[zerrin_id]["metadata"]["user"] == "alice"
    a_ids = {colour_id, zerrin_id}
    # The control: alice's own question recalls her fact (so the negatives below are not vacuous).
    assert zerrin_id in a.ask("Benim adım ne?", session="a-second")["memory_ids"]
    # Bob tells his own name in a session of the same name as alice's, and asks what alice asked.
    b.ask("Benim adım Kemal.", session="a-private")
    # (Bob's own words never hold alice's, so her text can be looked for in the files after her erase.)
    for question, session in (("Benim adım ne?", "b-1"), ("Benim adım neydi?", None), ("En sevdiğim renk ne?", None),
                              ("Adımı hatırlıyor musun?", "b-2"), ("Hangi rengi severim?", None)):
        ids = set(b.ask(question, session=session)["memory_ids"])
        t.ok(not ids & a_ids, f"B's chat recalled {ids & a_ids} for {question!r}")
    # Bob's "Kemal" did not supersede alice's name, and is not hers.
    t.ok(a.http.get(f"/v1/evo/memories/{zerrin_id}").json()["current"], "B's name superseded A's")
    t.ok(not any("Kemal" in m["text"] for m in a.memories().values()), "B's fact in A's list")
    t.ok(zerrin_id in a.ask("Benim adım ne?", session="a-third")["memory_ids"], "A lost her fact")
    # Search, list, export.
    for query in ("Zerrin", "Benim adım ne?", "lacivert renk", "Kullanıcının adı"):
        hits = b.http.post("/v1/evo/memories/search", json={"query": query, "top_k": 100}).json()["hits"]
        t.ok(not {h["id"] for h in hits} & a_ids, f"B's search {query!r}")
    t.ok(not set(b.memories()) & a_ids, "B's list")
    export = b.http.get("/v1/evo/memories/export")
    assert export.status_code == 200
    t.ok("Zerrin" not in export.text and "lacivert" not in export.text and not any(i in export.text for i in a_ids), "B's export")
    t.ok(not set(u["owner"].memories()) & a_ids, "the owner's list")  # the owner is one more user for the data
    t.ok(all(s["id"] != "a-private" or s["turns"] == 1 for s in b.http.get("/v1/evo/sessions").json()["sessions"]), "B's session list")
    t.ok([x["message"] for x in b.http.get("/v1/evo/sessions/a-private").json()["turns"]] == ["Benim adım Kemal."], "B's a-private")
    t.report()


def test_bs_guesses_at_as_ids_get_the_404_a_missing_id_gets(world):
    _, u, _ = world
    a, b = u["alice"], u["bob"]
    t = Tally("B guessing A's ids")
    a.ask("Bugün hava güzel.", session="a-only")
    zerrin_id = next(i for i, m in a.memories().items() if m["type"] == "fact" and "Zerrin" in m["text"])
    missing_memory, missing_session = "0" * 32, "no-such-session"

    def same(r: httpx.Response, twin: httpx.Response, what: str) -> None:
        body, other = r.json()["error"], twin.json()["error"]
        t.ok(r.status_code == twin.status_code == 404 and body["code"] == other["code"] and body["type"] == other["type"], what)

    same(b.http.get(f"/v1/evo/memories/{zerrin_id}"), b.http.get(f"/v1/evo/memories/{missing_memory}"), "GET memory")
    same(b.http.delete(f"/v1/evo/memories/{zerrin_id}"), b.http.delete(f"/v1/evo/memories/{missing_memory}"), "DELETE memory")
    same(b.http.get("/v1/evo/sessions/a-only"), b.http.get(f"/v1/evo/sessions/{missing_session}"), "GET session")
    same(b.http.delete("/v1/evo/sessions/a-only"), b.http.delete(f"/v1/evo/sessions/{missing_session}"), "DELETE session")
    same(b.http.post("/v1/evo/feedback", json={"session_id": "a-only", "kind": "bad", "reason": "x"}),
         b.http.post("/v1/evo/feedback", json={"session_id": missing_session, "kind": "bad", "reason": "x"}), "feedback")
    for name in ("alice/a-only", "alice%2Fa-only"):  # the stored form of her id is not reachable either
        t.ok(b.http.get(f"/v1/evo/sessions/{name}").status_code == 404, f"GET session {name}")
    forgot = b.http.post("/v1/evo/memories/forget", json={"query": zerrin_id}).json()
    t.ok(forgot["deleted"] == 0 and zerrin_id not in forgot["ids"], "forget by A's id")
    forgot = b.http.post("/v1/evo/memories/forget", json={"query": "Zerrin"}).json()
    t.ok(zerrin_id not in forgot["ids"], "forget by A's words")
    # An import naming A's id (and her user) neither overwrites nor takes over her memory.
    line = json.dumps({"id": zerrin_id, "text": "Kullanıcının adı Hacker.", "metadata": {"type": "fact", "user": "alice"}})
    imported = b.http.post("/v1/evo/memories/import", content=line.encode(), headers={"Content-Type": "application/x-ndjson"})
    t.ok(imported.status_code == 200 and imported.json()["imported"] == 1, "import")
    t.ok(a.http.get(f"/v1/evo/memories/{zerrin_id}").json()["text"] == "Kullanıcının adı Zerrin.", "import overwrote A's memory")
    t.ok(any("Hacker" in m["text"] and i != zerrin_id for i, m in b.memories().items()), "import landed as B's")
    # Everything of alice's is still hers.
    t.ok(a.http.get("/v1/evo/sessions/a-only").status_code == 200, "A's session gone")
    t.ok(zerrin_id in a.memories(), "A's memory gone")
    t.report()


def test_keys_issued_rotated_and_removed_take_effect_at_once(world):
    srv, u, env = world
    t = Tally("issued, rotated, removed keys")
    root = u["root"].http
    carol = root.post("/v1/evo/users", json={"name": "carol"}).json()["key"]
    with httpx.Client(base_url=srv.url, timeout=30) as h:
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {carol}"}).status_code == 200, "new key refused")
        t.ok(root.post("/v1/evo/users", json={"name": "Carol"}).status_code == 409, "name taken twice")
        fresh = root.post("/v1/evo/users/carol/key").json()["key"]
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {carol}"}).status_code == 401, "rotated key accepted")
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200, "fresh key refused")
        removed = root.delete("/v1/evo/users/carol")
        t.ok(removed.status_code == 200 and removed.json()["removed"], "remove")
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401, "removed key accepted")
        # The CLI, while the server runs: its changes count at the next request.
        dave = _key(run_evo("users", "add", "dave", "--json", env=env))
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {dave}"}).json()["name"] == "dave", "CLI key refused")
        listed = json.loads(run_evo("users", "list", "--json", env=env).stdout)["users"]
        t.ok({x["name"] for x in listed} == {"alice", "bob", "root", "dave"} and all("key" not in x for x in listed), "CLI list")
        assert run_evo("users", "remove", "dave", "--keep-data", env=env).returncode == 0
        t.ok(h.get("/v1/evo/me", headers={"Authorization": f"Bearer {dave}"}).status_code == 401, "CLI-removed key accepted")
    stored = b"".join(p.read_bytes() for p in srv.home.glob("conversations.db*"))  # only the keys' hashes are stored
    t.ok(fresh.encode() not in stored and u["bob"].key.encode() not in stored, "a key stored as is")
    t.report()


def _holding(home: Path, needle: bytes) -> list[str]:
    """The files under the data dir holding `needle`: memory's Chroma folder, the conversation database and their side
    files, the logs (evo.jsonl and the server's own output); not the models or the shared knowledge library."""
    files = [p for p in home.rglob("*") if p.is_file() and p.relative_to(home).parts[0] not in ("models", "knowledge", "torch")]
    return [str(p.relative_to(home)) for p in files if needle in p.read_bytes()]


def test_erasing_a_leaves_b_as_it_was_and_her_text_leaves_the_files(world):
    srv, u, _ = world
    a, b = u["alice"], u["bob"]
    t = Tally("erase A, B intact")
    b_before = (set(b.memories()), [s["id"] for s in b.http.get("/v1/evo/sessions").json()["sessions"]])
    assert b_before[0] and b_before[1]
    a.http.post("/v1/evo/feedback", json={"session_id": "a-private", "kind": "bad", "reason": "Zerrin yanlış"})
    assert _holding(srv.home, b"Zerrin")  # her text is in the files before (so the check after says something)
    refused = a.http.delete("/v1/evo/me", params={"confirm": "bob"})
    t.ok(refused.status_code == 400 and a.http.get("/v1/evo/me").json()["memories"] > 0, "erase without the right confirmation")
    erased = a.http.delete("/v1/evo/me", params={"confirm": "alice"})
    assert erased.status_code == 200, erased.text
    counts = erased.json()
    t.ok(counts["sessions"] >= 4 and counts["turns"] >= 4 and counts["memories"] >= 2 and counts["feedback"] >= 1, f"counts {counts}")
    t.ok(a.memories() == {} and a.http.get("/v1/evo/sessions").json()["sessions"] == [], "A's data left")
    t.ok(a.http.get("/v1/evo/me").json()["memories"] == 0, "A's /me")
    t.ok((set(b.memories()), [s["id"] for s in b.http.get("/v1/evo/sessions").json()["sessions"]]) == b_before, "B's data changed")
    t.ok(b.ask("Benim adım ne?", session="b-after")["turn"] == 1, "B's chat")
    time.sleep(1)  # the turn's own writes (its exchange) land, then every file is read
    left = _holding(srv.home, b"Zerrin")
    t.ok(not left, f"A's text still in {left}")
    t.ok(a.http.get("/v1/evo/me").status_code == 200, "A's key")  # erasing the data keeps the key
    t.report()
