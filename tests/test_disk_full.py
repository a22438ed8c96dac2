"""Disk full (issue 27, part 2): the same writes on a tiny filesystem, a tmpfs mounted for the test (it runs as root
here, as CI does; elsewhere it is skipped with the reason shown). Each write on the full disk must fail with a
clear error that names the disk, lose and corrupt nothing, and work again once space is freed."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import EVO, MODEL, report_row
from .test_kill_campaigns import _adapter_home, adapter_problems, memory_state, sqlite_ok
from .test_lifecycle import night_env, synthetic_day
from .test_serve import start_server, stop

SIZE_MB = 96


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE_MB} MB tmpfs here ({proc.stderr.strip() or proc.returncode}): the disk-full checks need root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the filesystem refuses another byte."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def evo(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EVO, *args], env=env, capture_output=True, text=True, timeout=300)


def test_writes_on_a_full_disk_fail_clearly_lose_nothing_and_work_once_space_is_freed(small_disk, tmp_path):
    from evo_tr.lifecycle.conversations import ConversationStore

    home = _adapter_home(small_disk, versions=2)  # home/adapters/python_coder/v1, v2 on the small disk
    env = {**os.environ, "EVO_HOME": str(home), "EVO_MODEL": MODEL, "EVO_GENERATION__MAX_TOKENS": "8", "COLUMNS": "400",
           **night_env(), "EVO_NIGHT__LLM_EXTRACTION": "false"}
    day = "2026-04-20"
    synthetic_day(home, day)
    first = evo(env, "memory", "add", "Disk dolmadan önce yazılan not.", "--json")
    assert first.returncode == 0, first.stderr
    acked_memory = json.loads(first.stdout)["id"]
    turn = evo(env, "ask", "--json", "Merhaba! Benim adım Deniz.")
    assert turn.returncode == 0, turn.stderr
    session = json.loads(turn.stdout)["session"]
    assert evo(env, "adapters", "activate", "python_coder", "v1").returncode == 0
    source = tmp_path / "import.jsonl"  # on the big disk
    source.write_text("".join(json.dumps({"id": f"full{i:03d}", "text": f"Dolu diskte içe aktarılan not {i}.", "metadata": {"type": "fact"}},
                                         ensure_ascii=False) + "\n" for i in range(50)), encoding="utf-8")

    operations = {
        "memory add": ["memory", "add", "Dolu diske yazılmak istenen not.", "--json"],
        "memory import": ["memory", "import", str(source), "--json"],
        "chat turn (evo ask)": ["ask", "--json", "--session", session, "Ankara'da yaşıyorum."],
        "adapters activate": ["adapters", "activate", "python_coder", "v2"],
        "night": ["night", "--date", day, "--json"],
        "backup": ["backup", str(small_disk / "backup.tar")],
        "API: memory add + chat turn (evo serve)": None,
    }
    server = start_server(home, key=None, extra={k: v for k, v in env.items() if k.startswith("EVO_") and k not in ("EVO_HOME", "EVO_MODEL")})
    token = httpx.get(f"{server.url}/", timeout=30).text.split('name="evo-page-token" content="')[1].split('"')[0]
    http = httpx.Client(base_url=server.url, headers={"X-Evo-Page-Token": token}, timeout=300)

    def api() -> subprocess.CompletedProcess:
        """The server's writes as one 'command': rc 0 when both succeed, else the error bodies as stderr."""
        m = http.post("/v1/evo/memories", json={"text": "API ile dolu diske yazılmak istenen not."})
        c = http.post("/v1/chat/completions", headers={"X-Session-Id": "disk-full"},
                      json={"model": "evo-tr", "max_tokens": 8, "messages": [{"role": "user", "content": "Kedimin adı Pamuk."}]})
        bad = [r for r in (m, c) if r.status_code != 200]
        said = " | ".join(f"HTTP {r.status_code} {r.json()['error']['code']}: {r.json()['error']['message']}" for r in bad)
        return subprocess.CompletedProcess([], 1 if bad else 0, "", said)

    def check_intact(where: str) -> list[str]:
        problems = []
        present, mem = memory_state(home)
        problems += [f"{where}: {p}" for p in mem]
        if acked_memory not in present:
            problems.append(f"{where}: the acknowledged memory is gone")
        if (p := sqlite_ok(home / "conversations.db")) is not None:
            problems.append(f"{where}: {p}")
        turns = ConversationStore(home / "conversations.db").turns(session)
        if not turns or turns[0].message != "Merhaba! Benim adım Deniz.":
            problems.append(f"{where}: the first turn is gone")
        active, adapters = adapter_problems(home)
        problems += [f"{where}: {p}" for p in adapters]
        if active not in ("v1", "v2"):
            problems.append(f"{where}: active adapter {active}")
        return problems

    outcomes, after, problems = {}, {}, []
    for name, args in operations.items():  # each write alone on a full disk, checked once space is back, then rerun
        filler = fill(small_disk)
        proc = evo(env, *args) if args else api()
        filler.unlink()
        if proc.returncode == 0:
            outcomes[name] = "succeeded (fit in what was left)"
        else:
            said = proc.stderr
            clear = "Traceback" not in said and "full" in said.lower() and str(small_disk) in said
            outcomes[name] = "clear error" if clear else "UNCLEAR"
            if not clear:
                problems.append(f"{name} on a full disk said:\n{said[-1500:]}")
        problems += check_intact(f"after {name} on a full disk")
        if name == "backup" and proc.returncode != 0 and any(small_disk.glob("backup.tar*")):
            problems.append(f"a failed backup left {[p.name for p in small_disk.glob('backup.tar*')]}")
        proc = evo(env, *args) if args else api()
        after[name] = "ok" if proc.returncode == 0 else f"rc {proc.returncode}"
        if proc.returncode != 0:
            problems.append(f"{name} after freeing space failed:\n{proc.stderr[-1500:]}")
        problems += check_intact(f"after {name} once space was freed")
        (small_disk / "backup.tar").unlink(missing_ok=True)
    http.close()
    stop(server)
    for name in operations:
        report_row("Disk full", {"operation": name, "on a full disk": outcomes[name], "after freeing space": after[name],
                                 "lost or corrupt": sum(name in p for p in problems)})
    assert not problems, "\n\n".join(problems)
    present, _ = memory_state(home)
    assert "Dolu diske yazılmak istenen not." in present.values() and "full049" in present
    db = sqlite3.connect(home / "conversations.db")
    assert set(dict(db.execute("SELECT step, status FROM night_steps WHERE day = ?", (day,)).fetchall()).values()) == {"done"}
    db.close()
    shutil.rmtree(home, ignore_errors=True)
