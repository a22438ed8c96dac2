"""Concurrent processes on one data dir (issue 27, part 3): two `evo chat`, `evo serve` and `evo night` at once.

Upstream Chroma warns that two processes writing one persistent store can hang or corrupt it. EVO-TR's answer is
a cross-process write lock with a generation counter (src/evo_tr/chroma.py): each write takes the lock (bounded
wait, then a clear "busy: in use by PID …" message, and chat queues the fact durably instead), and a process
whose in-memory index is stale reopens before it writes. The knowledge pack is indexed by the first process
that needs it, under the same kind of lock. This test starts all four on a fresh EVO_HOME at the same moment,
with real SmolLM2, and checks that every one finished in bounded time, every acknowledged write is there once,
and each store passes its checks afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx

from .conftest import EVO, MODEL, report_row, run_json
from .test_kill_campaigns import memory_state, open_memories, sqlite_ok
from .test_lifecycle import night_env, synthetic_day
from .test_serve import start_server, stop

BOUND_S = 420  # every process must be done by then: a hang fails the test instead of the CI job


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_")}
    return {**env, "EVO_HOME": str(home), "EVO_CONFIG": str(home / "evo.toml"), "EVO_MODEL": MODEL,
            "EVO_GENERATION__MAX_TOKENS": "8", **night_env(), "EVO_NIGHT__LLM_EXTRACTION": "false"}


def test_two_chats_a_server_and_a_night_on_one_data_dir(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    day = "2026-04-07"
    synthetic_day(home, day)  # the night has a day to learn from: Deniz, Ankara, öğretmen
    env = _env(home)
    server = start_server(home, key=None, extra={k: v for k, v in env.items() if k.startswith("EVO_") and k not in ("EVO_HOME", "EVO_CONFIG", "EVO_MODEL")})
    api_ids: list[str] = []
    api_errors: list[str] = []
    api_answers: list[str] = []

    def api_client() -> None:
        token = httpx.get(f"{server.url}/", timeout=30).text.split('name="evo-page-token" content="')[1].split('"')[0]
        with httpx.Client(base_url=server.url, headers={"X-Evo-Page-Token": token}, timeout=BOUND_S) as http:
            for n in range(6):
                r = http.post("/v1/evo/memories", json={"text": f"API notu {n}: toplantı {n + 1} Ekim'de."})
                if r.status_code == 200:
                    api_ids.append(r.json()["id"])
                else:
                    api_errors.append(f"{r.status_code} {r.text[:200]}")
                c = http.post("/v1/chat/completions", headers={"X-Session-Id": "api-concurrent"}, json={"model": "evo-tr", "max_tokens": 8,
                                                            "messages": [{"role": "user", "content": f"Benim {n}. sorum: bugün ne yapsam?"}]})
                (api_answers if c.status_code == 200 else api_errors).append(c.text[:200])

    try:
        start = time.monotonic()
        chats = {
            "A": "Benim adım Ayşe.\nKedimin adı Pamuk.\n/quit\n",
            "B": "İzmir'de yaşıyorum.\nEn sevdiğim renk mavi.\n/quit\n",
        }
        procs = {name: subprocess.Popen([*EVO, "chat"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in chats}
        procs["night"] = subprocess.Popen([*EVO, "night", "--date", day, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = threading.Thread(target=api_client)
        client.start()
        outputs = {}
        for name, proc in procs.items():
            outputs[name] = proc.communicate(chats.get(name), timeout=BOUND_S)  # a deadlock fails here
        client.join(timeout=BOUND_S)
        assert not client.is_alive(), "the API client hung"
        took = time.monotonic() - start
    finally:
        stop(server)
    for name, proc in procs.items():
        out, err = outputs[name]
        busy = "in use by PID" in err
        assert proc.returncode == 0 or busy, f"{name}: rc {proc.returncode}\n{err[-1500:]}"
        assert "Traceback" not in err, f"{name}: {err[-1500:]}"
    assert not api_errors, api_errors
    assert len(api_answers) == 6 and len(api_ids) == 6

    # Every acknowledged write is there once, and every store passes its checks.
    present, problems = memory_state(home)
    assert not problems, problems
    texts = list(present.values())
    assert all(i in present for i in api_ids)
    assert len(texts) == len(set(texts)), texts
    assert any("Ayşe" in t for t in texts) and any("İzmir" in t for t in texts), texts  # facts captured by both chats
    night = json.loads(outputs["night"][0])
    assert all(a["id"] in present for a in night["extract"]["added"])
    assert any("Deniz" in t for t in texts)
    assert sqlite_ok(home / "conversations.db") is None
    conn = sqlite3.connect(home / "conversations.db")
    turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    steps = dict(conn.execute("SELECT step, status FROM night_steps WHERE day = ?", (day,)).fetchall())
    conn.close()
    assert turns == 4 + 4 + 6, turns  # the synthetic day's 4, two chats' 2 each, six API turns
    assert set(steps.values()) == {"done"}
    # the knowledge pack, indexed by whichever process came first, is there once
    pack = run_json("knowledge", "list", "--json", env={"EVO_HOME": str(home)})
    assert pack
    # a new process searches the store they all wrote
    hits = open_memories(home).search("toplantı ne zaman", 3)
    assert hits and "toplantı" in hits[0].memory.text
    queued = sqlite3.connect(home / "conversations.db").execute("SELECT COUNT(*) FROM memory_queue").fetchone()[0]
    report_row("Concurrent processes", {"processes": "2 × evo chat, evo serve (+ API client), evo night", "finished": f"{len(procs) + 1}/{len(procs) + 1}",
                                        "seconds": round(took), "memories": len(texts), "turns": turns, "left queued": queued,
                                        "corrupt stores": 0})
