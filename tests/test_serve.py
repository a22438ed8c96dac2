"""`evo serve`: a real server subprocess on loopback with SmolLM2, talked to with the official `openai`
package, raw HTTP (httpx), simonw's `llm` CLI and Schemathesis. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from .conftest import EVO, MODEL, free_port, run_evo

KEY = "test-key-7f3a9c"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen
    key: str | None
    log: Path

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key or "none", max_retries=0, timeout=120, **kw)

    def http(self, *, key: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if key and self.key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "conversations.db")
        conn.row_factory = sqlite3.Row
        return conn


def _env(home: Path, key: str | None, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_")}
    env.update({"EVO_HOME": str(home), "EVO_CONFIG": str(home / "evo.toml"), "EVO_MODEL": MODEL, "EVO_NIGHT__RETRAIN": "false", **extra})
    if key:
        env["EVO_API_KEY"] = key
    return env


def start_server(home: Path, *, key: str | None = KEY, extra: dict[str, str] | None = None, timeout: float = 240) -> Server:
    """`evo serve` in a subprocess, waited for until /health says ready."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "serve.log"
    proc = subprocess.Popen([*EVO, "serve", "--port", str(port)], env=_env(home, key, extra or {}), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", home, proc, key, log)
    deadline = time.time() + timeout
    seen = set()
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"evo serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            r = httpx.get(f"{server.url}/health", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=5)
            seen.add(r.json()["status"])
            if r.json()["status"] == "ready":
                server.seen = seen
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"evo serve was not ready within {timeout} s: {log.read_text()[-2000:]}")


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()


def register_random_adapter(home: Path, expert: str, torch_home: Path) -> None:
    """A random-init LoRA for the test model, registered and activated like a trained one (r=8, q/v). The torch
    copy of the base comes from `torch_home` (the session's test home converts it once)."""
    from evo_tr.config import load_settings
    from evo_tr.experts import base_info, registry
    from evo_tr.experts.export import random_lora
    from evo_tr.experts.train import load_torch_base

    settings = load_settings(home=home, model=MODEL)
    base = base_info(settings)
    model, _ = load_torch_base(load_settings(home=torch_home, model=MODEL), base.name, base.path, base.sha256)
    staging = home / f"staging-{expert}"
    random_lora(model, base.path, staging, expert=expert, seed=1)
    registry(settings).register(expert, staging, {"base": {"name": base.name, "sha256": base.sha256}, "command": "test: random LoRA"})


@pytest.fixture(scope="module")
def server(tmp_path_factory, evo_home):
    """The main server: an API key (so the write endpoints are open to the tests), a random python_coder adapter."""
    home = tmp_path_factory.mktemp("serve-home")
    env = _env(home, None, {})
    proc = subprocess.run([*EVO, "models", "list"], env=env, capture_output=True, text=True, timeout=300)  # provisions the test model
    assert proc.returncode == 0, proc.stderr
    register_random_adapter(home, "python_coder", torch_home=evo_home)
    srv = start_server(home)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory):
    """A server whose engine queue holds one waiting request and whose requests stop after 4 s: 503s, dropped
    clients, time limits (no key)."""
    home = tmp_path_factory.mktemp("serve-queue")
    srv = start_server(home, key=None, extra={"EVO_ENGINE__MAX_QUEUE": "1", "EVO_SERVE__MAX_TOKENS": "512", "EVO_SERVE__REQUEST_TIMEOUT_S": "4"})
    yield srv
    stop(srv)


def ask(client: openai.OpenAI, messages, **kw):
    return client.chat.completions.create(model=kw.pop("model", "evo-tr"), messages=messages, temperature=0, seed=0, max_tokens=kw.pop("max_tokens", 24), **kw)


# -- the OpenAI endpoints ------------------------------------------------------------------------------
def test_health_said_loading_then_ready_and_models_list_every_id(server):
    assert {"loading", "ready"} <= server.seen  # /health answered while the model loaded
    ids = [m.id for m in server.client().models.list().data]
    assert ids == ["evo-tr", "evo-tr/base", "evo-tr/python_coder", "evo-tr-e5"]
    assert server.client().models.retrieve("evo-tr/base").id == "evo-tr/base"


def _counts(server: Server) -> tuple[int, int]:
    with server.db() as db:
        return db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0], db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]


def test_chat_non_streaming_has_true_usage_finish_reason_and_the_evo_object(server):
    before = _counts(server)
    full = ask(server.client(), HELLO, max_tokens=64)
    choice = full.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert full.usage.prompt_tokens > 5 and 0 < full.usage.completion_tokens <= 64
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    evo = full.model_extra["evo"]
    assert evo["expert"] in ("tr_chat", "python_coder", "base") and evo["intent"] and 0 < evo["confidence"] <= 1
    assert evo["session_id"] is None and evo["turn"] is None and _counts(server) == before  # stateless: nothing kept
    short = ask(server.client(), HELLO, max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2


def test_chat_streaming_matches_non_streaming_and_ends_with_usage(server):
    client = server.client()
    plain = ask(client, HELLO)
    chunks = list(ask(client, HELLO, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == plain.choices[0].finish_reason and finals[0].model_extra["evo"]["expert"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()
    with server.http() as http:  # the wire format itself: SSE lines, ending in [DONE]
        with http.stream("POST", "/v1/chat/completions", json={"model": "evo-tr", "messages": HELLO, "max_tokens": 8, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["choices"][0]["delta"]["role"] == "assistant"


def test_the_model_id_forces_the_expert(server):
    coder = ask(server.client(), HELLO, model="evo-tr/python_coder").model_extra["evo"]
    assert coder["expert"] == "python_coder" and coder["adapter"] == "python_coder" and coder["adapter_version"] == "v1"
    assert coder["route_source"] == "request"
    base = ask(server.client(), HELLO, model="evo-tr/base").model_extra["evo"]
    assert base["expert"] == "base" and base["adapter"] is None


def test_the_clients_own_last_exchange_is_the_routers_context(server):
    """An OpenAI client sends the whole conversation: its follow-up keeps the code expert (routing follows it)."""
    follow = {"role": "user", "content": "peki bunu daha kısa yaz"}
    earlier = [{"role": "user", "content": "Python'da bir listeyi sıralayan fonksiyon yazar mısın?"},
               {"role": "assistant", "content": "```python\ndef sirala(liste):\n    return sorted(liste)\n```"}]
    with server.http() as http:
        alone = http.post("/v1/chat/completions", json={"model": "evo-tr", "max_tokens": 1, "messages": [follow]}).json()["evo"]
        after = http.post("/v1/chat/completions", json={"model": "evo-tr", "max_tokens": 1, "messages": [*earlier, follow]}).json()["evo"]
    assert after["intent"] == "code_python" and after["expert"] == "python_coder" and alone["intent"] != "code_python"


def test_a_session_header_stores_the_turns_and_the_client_history_is_the_conversation(server):
    client = server.client()
    first = [{"role": "user", "content": "Bir kedi adı öner."}]
    one = ask(client, first, extra_headers={"X-Session-Id": "api-cont-1"})
    assert one.model_extra["evo"]["session_id"] == "api-cont-1" and one.model_extra["evo"]["turn"] == 1
    follow = [*first, {"role": "assistant", "content": one.choices[0].message.content}, {"role": "user", "content": "Bir tane daha öner."}]
    two = ask(client, follow, extra_body={"metadata": {"session_id": "api-cont-1"}})
    assert two.model_extra["evo"]["turn"] == 2
    stateless = ask(client, follow)  # the same messages without a session: the very same prompt
    assert two.usage.prompt_tokens == stateless.usage.prompt_tokens
    with server.db() as db:
        rows = db.execute("SELECT number, message FROM turns WHERE session_id = 'api-cont-1' ORDER BY number").fetchall()
    assert [(r["number"], r["message"]) for r in rows] == [(1, "Bir kedi adı öner."), (2, "Bir tane daha öner.")]


def test_a_fact_told_in_one_session_is_recalled_in_another_and_forgetting_it_over_http_works(server):
    client = server.client()
    ask(client, [{"role": "user", "content": "Benim adım Zeynep."}], extra_headers={"X-Session-Id": "api-fact-a"})
    evo = ask(client, [{"role": "user", "content": "Benim adım ne?"}], extra_headers={"X-Session-Id": "api-fact-b"}).model_extra["evo"]
    with server.http() as http:
        memories = {m["id"]: m for m in http.get("/v1/evo/memories", params={"limit": 200}).json()["memories"]}
        recalled = [memories[i]["text"] for i in evo["memory_ids"] if i in memories]
        assert any("Zeynep" in t for t in recalled), (evo, memories)
        fact_id = next(i for i in evo["memory_ids"] if i in memories and "Zeynep" in memories[i]["text"])
        assert http.delete(f"/v1/evo/memories/{fact_id}").status_code == 200
        with server.http(key=False) as anonymous:
            assert anonymous.delete(f"/v1/evo/memories/{fact_id}").status_code == 401
    again = ask(client, [{"role": "user", "content": "Benim adım ne?"}], extra_headers={"X-Session-Id": "api-fact-c"}).model_extra["evo"]
    assert fact_id not in again["memory_ids"]


def test_embeddings_have_the_right_shape_in_both_encodings(server):
    out = server.client().embeddings.create(model="evo-tr-e5", input=["Merhaba dünya", "Bugün hava güzel"])  # the SDK asks for base64
    vectors = np.array([d.embedding for d in out.data])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3) and out.usage.prompt_tokens > 4
    with server.http() as http:
        plain = http.post("/v1/embeddings", json={"model": "evo-tr-e5", "input": "Merhaba dünya", "encoding_format": "float"}).json()
    assert np.allclose(plain["data"][0]["embedding"], vectors[0], atol=1e-6)


def test_feedback_over_http_is_stored_and_counted_by_the_night(server):
    client = server.client()
    ask(client, [{"role": "user", "content": "Türkiye'nin başkenti neresi?"}], extra_headers={"X-Session-Id": "api-feedback"})
    with server.http() as http:
        r = http.post("/v1/evo/feedback", json={"session_id": "api-feedback", "kind": "bad", "reason": "yanlış şehir"})
        assert r.status_code == 200, r.text
    with server.db() as db:
        rows = db.execute("SELECT kind, reason, turn FROM feedback WHERE session_id = 'api-feedback'").fetchall()
    assert [(r["kind"], r["reason"], r["turn"]) for r in rows] == [("bad", "yanlış şehir", 1)]
    today = time.strftime("%Y-%m-%d")
    night = subprocess.run([*EVO, "night", "--date", today, "--dry-run", "--json"], env=_env(server.home, None, {"EVO_NIGHT__LLM_EXTRACTION": "false"}),
                           capture_output=True, text=True, timeout=600)
    assert night.returncode == 0, night.stderr
    failures = json.loads(night.stdout)["analyze"]["failures"]
    assert any(f["session"] == "api-feedback" and f["kind"] == "bad" and "yanlış şehir" in f["reason"] for f in failures)


# -- errors --------------------------------------------------------------------------------------------
def _error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"] and "Traceback" not in r.text
    if code:
        assert body["code"] == code, body
    return body


def test_errors_are_openai_shaped_with_the_right_status(server):
    with server.http() as http:
        _error(http.post("/v1/chat/completions", json={"model": "gpt-9", "messages": HELLO}), 404, "model_not_found")
        assert _error(http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": []}), 400)["param"] == "messages"
        _error(http.post("/v1/chat/completions", content=b'{"model": "evo-tr", "messages": [', headers={"Content-Type": "application/json"}),
               400, "invalid_json")
        _error(http.post("/v1/chat/completions", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}), 413, "body_too_large")
        assert _error(http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": HELLO, "n": 2}), 400)["param"] == "n"
        assert _error(http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": HELLO, "tools": [{"type": "function"}]}), 400)["param"] == "tools"
        _error(http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": HELLO, "bogus": 1}), 400)
        _error(http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": [{"role": "assistant", "content": "hi"}]}), 400)
        _error(http.get("/v1/nothing-here"), 404)
        _error(http.post("/v1/embeddings", json={"model": "evo-tr-e5", "input": []}), 400)
    with server.http(key=False) as anonymous:
        _error(anonymous.get("/v1/models"), 401, "invalid_api_key")
        _error(anonymous.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key")
    with pytest.raises(openai.NotFoundError):
        ask(server.client(), HELLO, model="evo-tr/nope")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()


def test_the_log_holds_no_message_text_and_no_key(server):
    ask(server.client(), [{"role": "user", "content": "Gizli mesaj: mor zürafa"}])
    log = (server.home / "logs" / "evo.jsonl").read_text(encoding="utf-8")
    http_lines = [json.loads(line) for line in log.splitlines() if '"event": "http"' in line]
    assert any(e["path"] == "/v1/chat/completions" and e["status"] == 200 for e in http_lines)
    assert "mor zürafa" not in log and KEY not in log and KEY not in server.log.read_text()
    with server.http() as http:
        metrics = http.get("/metrics").text
    assert 'evo_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in metrics
    assert "evo_ttft_seconds_count" in metrics and 'evo_tokens_total{direction="out"}' in metrics and "evo_engine_queue_depth" in metrics


def test_binding_beyond_loopback_without_a_key_refuses_and_says_how(tmp_path):
    proc = run_evo("serve", "--host", "0.0.0.0", "--port", str(free_port()), env={"EVO_API_KEY": ""}, timeout=60)
    assert proc.returncode == 2 and "EVO_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_write_endpoints_need_a_key_even_on_loopback(small_queue):
    with small_queue.http() as http:
        _error(http.get("/v1/evo/memories/export"), 403, "api_key_required")
        _error(http.post("/v1/evo/adapters/tr_chat/rollback"), 403, "api_key_required")
        assert http.get("/v1/models").status_code == 200  # reading stays open on loopback


def test_without_a_key_only_the_served_page_may_write_and_other_host_names_are_refused(small_queue, server):
    import re

    with small_queue.http() as http:
        page = http.get("/")
        token = re.search(r'<meta name="evo-page-token" content="([^"]+)">', page.text).group(1)
        assert len(token) >= 32 and "no-referrer" in page.headers["referrer-policy"]
        _error(http.post("/v1/evo/memories", json={"text": "Sayfanın belirteci olmadan."}), 403, "api_key_required")
        _error(http.post("/v1/evo/memories", json={"text": "Yanlış belirteçle."}, headers={"X-Evo-Page-Token": token[:-1] + "x"}),
               403, "api_key_required")
        added = http.post("/v1/evo/memories", json={"text": "Sayfanın belirteciyle eklendi."}, headers={"X-Evo-Page-Token": token})
        assert added.status_code == 200, added.text
        assert http.delete(f"/v1/evo/memories/{added.json()['id']}", headers={"X-Evo-Page-Token": token}).json()["deleted"]
        # DNS rebinding: a site whose name now points at 127.0.0.1 is refused before anything is read.
        for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.nip.io"):
            _error(http.get("/v1/evo/memories", headers={"Host": host}), 403, "host_not_allowed")
        assert http.get("/health", headers={"Host": "localhost"}).status_code == 200
    with server.http() as http:  # with a key the page carries no token: it asks for the key instead
        assert "evo-page-token" not in http.get("/").text
        _error(http.post("/v1/evo/memories", json={"text": "x"}, headers={"Authorization": "", "X-Evo-Page-Token": token}),
               401, "invalid_api_key")


def test_with_a_key_the_page_asks_for_it_once_and_keeps_it_out_of_the_url(browser, server):
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(server.url + "/")
    pg.wait_for_selector("#key-dialog[open]")
    pg.fill("#key-input", KEY)
    pg.click("#key-form button")
    pg.wait_for_selector("#expert option[value='evo-tr/base']", state="attached")
    assert pg.evaluate("sessionStorage.getItem('evo-key')") == KEY and KEY not in pg.url
    context.close()


# -- concurrency -----------------------------------------------------------------------------------
def test_eight_concurrent_streaming_clients_get_their_own_answers(server):
    prompts = [f"Say the number {n} in words." for n in range(8)]
    client = server.client()
    expected = {p: ask(client, [{"role": "user", "content": p}]).choices[0].message.content for p in prompts}
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def one(prompt: str) -> None:
        try:
            chunks = list(ask(server.client(), [{"role": "user", "content": prompt}], stream=True))
            assert chunks[-1].choices[0].finish_reason in ("stop", "length")
            got[prompt] = "".join(c.choices[0].delta.content or "" for c in chunks)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and got == expected


def test_a_full_queue_is_503_with_retry_after(small_queue):
    results: list[int] = []

    def one() -> None:
        with small_queue.http() as http:
            r = http.post("/v1/chat/completions", json={"model": "evo-tr", "messages": HELLO, "max_tokens": 200, "temperature": 0})
            results.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["retry-after"] and r.json()["error"]["code"] == "engine_busy"

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert sorted(set(results)) == [200, 503] and results.count(200) >= 2


def _ttft(http: httpx.Client, content: str, max_tokens: int = 8) -> float:
    t0 = time.perf_counter()
    with http.stream("POST", "/v1/chat/completions", json={"model": "evo-tr/base", "messages": [{"role": "user", "content": content}],
                                                          "max_tokens": max_tokens, "stream": True, "temperature": 0}) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - t0
    raise AssertionError("no token came")


def test_a_client_that_disconnects_frees_the_engine(small_queue):
    with small_queue.http() as http:
        idle = max(_ttft(http, "Tell me about cats.") for _ in range(3))
        with http.stream("POST", "/v1/chat/completions", headers={"X-Session-Id": "dropped"},
                         json={"model": "evo-tr/base", "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
                               "max_tokens": 500, "stream": True, "temperature": 0}) as r:
            for n, _ in enumerate(r.iter_lines()):
                if n >= 3:
                    break  # leaving the block closes the connection mid-answer
        after = _ttft(http, "Tell me about cats.")
    assert after <= 2 * idle, (after, idle)
    deadline = time.time() + 30
    while time.time() < deadline:
        with small_queue.db() as db:
            row = db.execute("SELECT finish_reason, completion_tokens FROM turns WHERE session_id = 'dropped'").fetchone()
        if row is not None:
            break
        time.sleep(0.2)
    assert row["finish_reason"] == "interrupted" and row["completion_tokens"] < 100


def test_a_non_streaming_client_that_disconnects_frees_the_engine(small_queue):
    with small_queue.http() as http:
        idle = max(_ttft(http, "Tell me about dogs.") for _ in range(2))
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection while the answer is computed
            http.post("/v1/chat/completions", headers={"X-Session-Id": "gave-up"}, timeout=1.0,
                      json={"model": "evo-tr/base", "messages": [{"role": "user", "content": "Write a very long story about a ship."}],
                            "max_tokens": 500, "temperature": 0})
        time.sleep(0.6)  # the server notices within its poll interval and one token
        after = _ttft(http, "Tell me about dogs.")
    assert after <= 2 * idle, (after, idle)
    with small_queue.db() as db:
        row = db.execute("SELECT finish_reason, total_ms FROM turns WHERE session_id = 'gave-up'").fetchone()
    assert row["finish_reason"] == "interrupted" and row["total_ms"] < 3000  # stopped soon after the client left, not at the 4 s limit


def test_a_request_past_the_time_limit_stops_with_length(small_queue):
    with small_queue.http() as http:
        t0 = time.perf_counter()
        r = http.post("/v1/chat/completions", json={"model": "evo-tr/base", "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
                                                    "max_tokens": 512, "temperature": 0, "stop": []})
        elapsed = time.perf_counter() - t0
    body = r.json()
    assert r.status_code == 200 and body["choices"][0]["finish_reason"] == "length"
    assert 0 < body["usage"]["completion_tokens"] < 512 and elapsed < 60


# -- other clients -------------------------------------------------------------------------------------
def test_simonw_llm_answers_through_the_server(server, tmp_path):
    llm = shutil.which("llm", path=str(Path(sys.executable).parent))
    assert llm, "the test extra installs simonw's llm"
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: evo-test\n  model_name: evo-tr\n  api_base: "{server.url}/v1"\n  api_key_name: evo\n', encoding="utf-8")
    (tmp_path / "keys.json").write_text(json.dumps({"evo": KEY}), encoding="utf-8")
    proc = subprocess.run([llm, "-m", "evo-test", "-o", "max_tokens", "16", "-o", "temperature", "0", "--no-log", "What is 2+2?"],
                          env={**os.environ, "LLM_USER_PATH": str(tmp_path)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def _schemathesis(server: Server, cwd: Path, examples: int) -> None:
    """Every operation of the server's own /openapi.json, with the key (the write endpoints too)."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "the test extra installs schemathesis"
    proc = subprocess.run(
        [st, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error,response_schema_conformance",
         "-H", f"Authorization: Bearer {server.key}", "--max-examples", str(examples), "--phases", "coverage,fuzzing", "--seed", "1",
         "--request-timeout", "120", "--no-color"],
        capture_output=True, text=True, timeout=1800, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    spec = httpx.get(f"{server.url}/openapi.json", headers={"Authorization": f"Bearer {server.key}"}).json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert operations >= 30 and f"Tested: {operations}" in proc.stdout  # every endpoint, none skipped


def test_schemathesis_finds_no_server_error_and_no_schema_violation(server, tmp_path):
    """Last in this file: it deletes and imports whatever it likes on the main server."""
    _schemathesis(server, tmp_path, examples=5)


@pytest.mark.slow
def test_schemathesis_with_many_examples(server, tmp_path):
    _schemathesis(server, tmp_path, examples=100)
