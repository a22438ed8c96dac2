"""Kill campaigns (issue 27, part 1): real `evo` processes SIGKILLed at random moments while they write.

Each campaign runs one operation again and again on one data dir and kills it mid-way. Half the kills come at
a random moment of the command's run (uniform over the time an unkilled run took), half at a random moment
*while the process holds the store's write lock* (read from /proc/locks), where a torn write would happen.
After every kill: each store opens and passes its checks, everything acknowledged before (the command returned
success) is still there, the write in flight is either whole or absent, and a rerun completes without writing
anything twice. 10 trials per operation in `make test`; `make test-all` sets EVO_KILL_TRIALS=100.
The table at the end of the run is the README's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from evo_tr.config import load_settings

from .conftest import EVO, MODEL, report_row
from .hub_standin import StandinHub

TRIALS = int(os.environ.get("EVO_KILL_TRIALS", "10"))
SEED = int(os.environ.get("EVO_KILL_SEED", "27"))


@dataclass
class Tally:
    operation: str
    trials: int = 0
    killed: int = 0
    in_write: int = 0
    acknowledged: int = 0
    lost: int = 0
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {"operation": self.operation, "trials": self.trials, "killed mid-run": self.killed, "in a write": self.in_write,
                "acknowledged writes": self.acknowledged, "lost": self.lost, "corrupt stores": self.corrupt}

    def finish(self) -> None:
        report_row("Kill campaigns", self.row())
        assert self.lost == 0 and self.corrupt == 0, "\n".join(self.problems[:20])
        assert self.killed >= self.trials // 4, f"only {self.killed} of {self.trials} runs were killed before they finished"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "EVO_HOME": str(home), "EVO_MODEL": MODEL, **extra}


def lock_holder(path: Path) -> set[int]:
    """PIDs holding an flock on `path` (from /proc/locks: `1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`)."""
    try:
        inode = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    pids = set()
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            pids.add(int(parts[4]))
    return pids


@dataclass
class Run:
    returncode: int | None
    stdout: str
    stderr: str
    killed: bool
    in_write: bool


def run_and_kill(args: list[str], env: dict, *, rng: random.Random, span_s: float, lock: Path | None = None,
                 mode: str = "timed", stdin: str | None = None, cmd: list[str] | None = None, early: float = 0.2, late: float = 1.05) -> Run:
    """Start the command; SIGKILL it at a random moment of `span_s` ('timed', from `early` of it on: most of a short
    command is Python starting up) or while it holds `lock` ('write')."""
    proc = subprocess.Popen(cmd or [*EVO, *args], env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    in_write = False
    if mode == "write" and lock is not None:
        deadline = time.monotonic() + max(10.0, 3 * span_s)
        while proc.poll() is None and time.monotonic() < deadline:
            if proc.pid in lock_holder(lock):
                time.sleep(rng.uniform(0, 0.03))
                in_write = proc.poll() is None
                break
            time.sleep(0.002)
    else:
        deadline = time.monotonic() + rng.uniform(early, late) * span_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    return Run(None if killed else proc.returncode, out, err, killed, in_write and killed)


def timed(args: list[str], env: dict, stdin: str | None = None, cmd: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd or [*EVO, *args], env=env, input=stdin, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - start, proc


def sqlite_ok(path: Path) -> str | None:
    """None if the SQLite file opens and passes integrity_check (as a second process would open it)."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(path, timeout=10)
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
    except sqlite3.DatabaseError as exc:
        return f"{path.name}: {exc}"
    return None if verdict == "ok" else f"{path.name}: {verdict}"


def open_memories(home: Path):
    """A fresh MemoryStore on `home` (Chroma's per-path client cache dropped, as if in a new process)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    from evo_tr.memory import MemoryStore

    SharedSystemClient._identifier_to_system.clear()
    return MemoryStore(load_settings(home=home, model=MODEL))


def memory_state(home: Path) -> tuple[dict[str, str], list[str]]:
    """All memories (id → text) and what is wrong with the store; opening and searching it is part of the check."""
    problems = [p for p in [sqlite_ok(home / "memory" / "chroma" / "chroma.sqlite3")] if p]
    try:
        store = open_memories(home)
        got = store.collection.get(include=["documents"])
        ids = got["ids"]
        if len(ids) != len(set(ids)):
            problems.append("duplicate ids")
        if store.count() != len(ids):
            problems.append(f"count {store.count()} != {len(ids)} rows")
        if ids:
            store.search("kampanya notu", 3)
        return dict(zip(ids, got["documents"])), problems
    except Exception as exc:  # a store that cannot be opened is exactly what the campaign looks for
        return {}, [*problems, f"memory store: {type(exc).__name__}: {exc}"]


def modes(n: int) -> list[str]:
    return ["timed" if i % 2 == 0 else "write" for i in range(n)]


def memory_lock(home: Path) -> Path:
    return home / "memory" / "writer.lock"


# -- memory ------------------------------------------------------------------------------
def test_kill_memory_add(tmp_path):
    home, rng, tally = tmp_path / "home", random.Random(SEED), Tally("memory add")
    env = env_for(home)
    span, first = timed(["memory", "add", "Kampanya notu 0: ilk kayıt.", "--json"], env)
    acked = {json.loads(first.stdout)["id"]: "Kampanya notu 0: ilk kayıt."}
    for i, mode in enumerate(modes(TRIALS), start=1):
        text = f"Kampanya notu {i}: {rng.choice(['Ankara', 'İzmir', 'Iğdır', 'Çorum'])} {rng.randrange(10**6)}."
        run = run_and_kill(["memory", "add", text, "--json"], env, rng=rng, span_s=span, lock=memory_lock(home), mode=mode, late=1.3)
        tally.trials += 1
        tally.killed += run.killed
        tally.in_write += run.in_write
        if run.returncode == 0:
            acked[json.loads(run.stdout)["id"]] = text
        present, problems = memory_state(home)
        tally.corrupt += bool(problems)
        tally.problems += problems
        lost = [i for i, t in acked.items() if present.get(i) != t]
        tally.lost += len(lost)
        tally.problems += [f"lost {i}" for i in lost]
        extra = set(present) - set(acked)
        if run.killed and extra:  # the killed add landed whole: it is the text we sent
            assert [present[i] for i in extra] == [text], present
            acked.update({i: present[i] for i in extra})
    tally.acknowledged = len(acked)
    tally.finish()


def test_kill_memory_forget(tmp_path):
    home, rng, tally = tmp_path / "home", random.Random(SEED + 1), Tally("memory forget")
    env = env_for(home)
    source = tmp_path / "seed.jsonl"
    lines = [{"id": f"mem{i:04d}", "text": f"Kampanya notu {i}: unutulacak kayıt {i}.", "metadata": {"type": "fact"}} for i in range(TRIALS + 3)]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    timed(["memory", "import", str(source), "--json"], env)
    span, _ = timed(["memory", "forget", "mem0000", "--yes", "--json"], env)
    forgotten, kept = {"mem0000"}, {r["id"]: r["text"] for r in lines[1:]}
    for i, mode in enumerate(modes(TRIALS), start=1):
        target = f"mem{i:04d}"
        run = run_and_kill(["memory", "forget", target, "--yes", "--json"], env, rng=rng, span_s=span, lock=memory_lock(home), mode=mode, late=1.3)
        tally.trials += 1
        tally.killed += run.killed
        tally.in_write += run.in_write
        kept.pop(target)
        if run.returncode == 0:
            assert json.loads(run.stdout)["deleted"] == 1
            forgotten.add(target)
        present, problems = memory_state(home)
        tally.corrupt += bool(problems)
        tally.problems += problems
        back = forgotten & set(present)  # an acknowledged forget that came back is a lost write too
        lost = [k for k, t in kept.items() if present.get(k) != t]
        tally.lost += len(back) + len(lost)
        tally.problems += [f"forgotten {k} is back" for k in back] + [f"lost {k}" for k in lost]
        if target not in present:
            forgotten.add(target)
    store = open_memories(home)
    assert not any(h.memory.id in forgotten for h in store.search("unutulacak kayıt", 10))
    tally.acknowledged = len(forgotten)
    tally.finish()


def test_kill_memory_import(tmp_path):
    home, rng, tally = tmp_path / "home", random.Random(SEED + 2), Tally("memory import")
    env = env_for(home)
    acked: dict[str, str] = {}

    def batch(n: int) -> tuple[Path, dict[str, str]]:
        rows = {f"imp{n:03d}x{j:03d}": f"Kampanya notu {n}/{j}: içe aktarılan kayıt." for j in range(24)}
        path = tmp_path / f"batch{n}.jsonl"
        path.write_text("".join(json.dumps({"id": k, "text": v, "metadata": {"type": "fact", "source": "import"}}, ensure_ascii=False) + "\n"
                                for k, v in rows.items()), encoding="utf-8")
        return path, rows

    path, rows = batch(0)
    span, _ = timed(["memory", "import", str(path), "--json"], env)
    acked.update(rows)
    for i, mode in enumerate(modes(TRIALS), start=1):
        path, rows = batch(i)
        run = run_and_kill(["memory", "import", str(path), "--json"], env, rng=rng, span_s=span, lock=memory_lock(home), mode=mode, late=1.3)
        tally.trials += 1
        tally.killed += run.killed
        tally.in_write += run.in_write
        present, problems = memory_state(home)
        torn = [k for k in rows if k in present and present[k] != rows[k]]
        problems += [f"import left {k} half-written" for k in torn]
        if run.killed:  # the rerun completes and writes nothing twice
            again = subprocess.run([*EVO, "memory", "import", str(path), "--json"], env=env, capture_output=True, text=True, timeout=300)
            if again.returncode != 0:
                problems.append(f"rerun failed: {again.stderr[-300:]}")
            present, more = memory_state(home)
            problems += more
        acked.update(rows)
        tally.corrupt += bool(problems)
        tally.problems += problems
        lost = [k for k, t in acked.items() if present.get(k) != t]
        tally.lost += len(lost)
        tally.problems += [f"lost {k}" for k in lost]
        if len(present) != len(acked):
            tally.problems.append(f"{len(present)} memories for {len(acked)} imported")
            tally.corrupt += 1
    tally.acknowledged = len(acked)
    tally.finish()


# -- a chat turn being saved ---------------------------------------------------------------
def conversation_state(home: Path) -> tuple[dict[tuple[str, int], tuple[str, str]], list[str]]:
    path = home / "conversations.db"
    problems = [p for p in [sqlite_ok(path)] if p]
    from evo_tr.lifecycle.conversations import ConversationStore

    try:
        store = ConversationStore(path)
        turns = {}
        for s in store.list_sessions(limit=1000):
            numbers = [t.number for t in store.turns(s.id)]
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(f"session {s.id} has turns {numbers}")
            turns.update({(s.id, t.number): (t.message, t.answer) for t in store.turns(s.id)})
        return turns, problems
    except Exception as exc:
        return {}, [*problems, f"conversation store: {type(exc).__name__}: {exc}"]


def test_kill_chat_turn(tmp_path):
    """`evo ask --session` with the real SmolLM2: the turn log (SQLite), the memory it captures, the knowledge index."""
    home, rng, tally = tmp_path / "home", random.Random(SEED + 3), Tally("chat turn (evo ask)")
    env = env_for(home, EVO_GENERATION__MAX_TOKENS="8")
    ask = ["ask", "--json", "--temperature", "0"]
    timed([*ask, "Merhaba! Benim adım Deniz."], env)  # the first run also indexes the knowledge pack
    span, first = timed([*ask, "Ankara'da yaşıyorum."], env)
    session = json.loads(first.stdout)["session"]
    acked: dict[tuple[str, int], str] = {}
    turns, _ = conversation_state(home)
    acked.update({k: v[0] for k, v in turns.items()})
    for i, mode in enumerate(modes(TRIALS), start=1):
        message = f"Benim {i}. notum: {rng.choice(['kedim', 'bahçem', 'kitabım'])} {rng.randrange(1000)}."
        run = run_and_kill([*ask, "--session", session, message], env, rng=rng, span_s=span,
                           lock=memory_lock(home), mode=mode, late=1.3)
        tally.trials += 1
        tally.killed += run.killed
        tally.in_write += run.in_write
        turns, problems = conversation_state(home)
        present_msgs = {k: v[0] for k, v in turns.items()}
        if run.returncode == 0:
            out = json.loads(run.stdout)
            acked[(out["session"], out["turn"])] = message
        lost = [k for k, m in acked.items() if present_msgs.get(k) != m]
        new = {k: v for k, v in turns.items() if k not in acked}
        if run.killed and new:  # the killed turn was saved whole: our message with an answer
            if [v[0] for v in new.values()] != [message]:
                problems.append(f"unexpected turns {new}")
            acked.update({k: v[0] for k, v in new.items()})
        _, mem_problems = memory_state(home)
        problems += mem_problems
        tally.corrupt += bool(problems)
        tally.problems += problems + [f"lost turn {k}" for k in lost]
        tally.lost += len(lost)
    tally.acknowledged = len(acked)
    tally.finish()


# -- the night ------------------------------------------------------------------------------
def kill_in_step(args: list[str], env: dict, db_path: Path, day: str, step: str, rng: random.Random) -> Run:
    """SIGKILL `evo night` a random moment after `step` of `day` is marked running (what the campaign targets)."""
    proc = subprocess.Popen([*EVO, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
            row = db.execute("SELECT status FROM night_steps WHERE day = ? AND step = ?", (day, step)).fetchone()
            db.close()
        except sqlite3.Error:
            row = None
        if row:
            time.sleep(rng.uniform(0, 0.15))
            break
        time.sleep(0.003)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    return Run(None if killed else proc.returncode, out, err, killed, killed)


def test_kill_night(tmp_path):
    """Each trial kills a night of a new day inside one of its steps (in turn), reruns it to the end, and checks it
    wrote what an unkilled night writes: the day's facts once, every step done, a report."""
    from evo_tr.lifecycle.conversations import ConversationStore
    from evo_tr.lifecycle.night import STEPS

    from .test_lifecycle import night_env, synthetic_day

    rng, tally = random.Random(SEED + 4), Tally("night (each step)")
    env_extra = {**night_env(), "EVO_NIGHT__LLM_EXTRACTION": "false"}
    reference = tmp_path / "reference"
    synthetic_day(reference, "2026-05-01")
    _, out = timed(["night", "--date", "2026-05-01", "--json"], env_for(reference, **env_extra))
    expected_added = sorted(a["text"] for a in json.loads(out.stdout)["extract"]["added"])
    db_ref = sqlite3.connect(reference / "conversations.db")
    expected_proposals = db_ref.execute("SELECT COUNT(*) FROM proposals").fetchone()[0]
    db_ref.close()

    home = tmp_path / "home"
    env = env_for(home, **env_extra)
    acked_nights = 0
    for i in range(1, TRIALS + 1):
        day = f"2026-{5 + (i - 1) // 28:02d}-{(i - 1) % 28 + 2:02d}"
        synthetic_day(home, day)
        step = STEPS[(i - 1) % len(STEPS)]
        run = kill_in_step(["night", "--date", day, "--json"], env, home / "conversations.db", day, step, rng)
        tally.trials += 1
        tally.killed += run.killed
        tally.in_write += run.in_write
        problems = [p for p in [sqlite_ok(home / "conversations.db")] if p]
        rerun = subprocess.run([*EVO, "night", "--date", day, "--json"], env=env, capture_output=True, text=True, timeout=600)
        if rerun.returncode != 0:
            problems.append(f"rerun of {day} failed: {rerun.stderr[-300:]}")
        acked_nights += 1
        ConversationStore(home / "conversations.db")  # opens (runs its migrations) like the next evo process
        db = sqlite3.connect(home / "conversations.db")
        status = dict(db.execute("SELECT step, status FROM night_steps WHERE day = ?", (day,)).fetchall())
        proposals = db.execute("SELECT COUNT(*) FROM proposals WHERE day = ?", (day,)).fetchone()[0]
        db.close()
        if set(status) != set(STEPS) or set(status.values()) != {"done"}:
            problems.append(f"{day}: steps {status} after the rerun")
        if proposals != expected_proposals:
            problems.append(f"{day}: {proposals} proposals, an unkilled night makes {expected_proposals}")
        if not (home / "reports" / day / "report.json").is_file():
            problems.append(f"{day}: no report")
        present, mem_problems = memory_state(home)
        problems += mem_problems
        texts = sorted(present.values())
        # every synthetic day tells the same facts: the first night adds them, later nights merge into them
        if texts != expected_added:
            problems.append(f"{day}: memories {texts}, expected {expected_added} once each")
            tally.lost += len(set(expected_added) - set(texts))
        tally.corrupt += bool(problems)
        tally.problems += problems
    tally.acknowledged = acked_nights * len(expected_added)
    tally.finish()


# -- adapters -------------------------------------------------------------------------------
def _adapter_home(tmp_path: Path, versions: int = 3) -> Path:
    from evo_tr.experts.registry import packaged_root

    home = tmp_path / "home"
    src = packaged_root() / "python_coder"
    for n in range(1, versions + 1):
        dest = home / "adapters" / "python_coder" / f"v{n}"
        shutil.copytree(src, dest)
        meta = json.loads((dest / "metadata.json").read_text())
        (dest / "metadata.json").write_text(json.dumps({**meta, "version": f"v{n}"}))
    return home


def adapter_problems(home: Path) -> tuple[str | None, list[str]]:
    """The active version, and what is wrong: every registered version whole, the active one among them."""
    from evo_tr.experts.registry import AdapterRegistry, packaged_root

    src = packaged_root() / "python_coder"
    sizes = {p.relative_to(src): p.stat().st_size for p in src.rglob("*") if p.is_file() and p.name != "metadata.json"}
    reg = AdapterRegistry(home / "adapters")
    problems = []
    try:
        versions = reg.versions("python_coder")
        for v in versions:
            have = {p.relative_to(v.path): p.stat().st_size for p in v.path.rglob("*") if p.is_file() and p.name != "metadata.json"}
            if have != sizes:
                problems.append(f"{v.tag} is not whole: {sorted(set(sizes) ^ set(have))}")
        active = reg.active("python_coder")
        tag = None if active is None else ("v0" if active.packaged else active.tag)
        history = home / "adapters" / "python_coder" / "history"
        if history.is_file() and any(t != "none" and t not in {v.tag for v in versions} | {"v0"} for t in history.read_text().split()):
            problems.append(f"history names an unknown version: {history.read_text().split()}")
        return tag, problems
    except Exception as exc:
        return None, [f"registry: {type(exc).__name__}: {exc}"]


def test_kill_adapters_activate_and_rollback(tmp_path):
    home, rng, tally = _adapter_home(tmp_path), random.Random(SEED + 5), Tally("adapters activate/rollback")
    env = env_for(home)
    spans = [timed(["adapters", "activate", "python_coder", tag], env)[0] for tag in ("v2", "v3", "v1")]
    span = sorted(spans)[1]  # the median of three unkilled runs: the first one alone (cold caches) made most kills come too late
    active = "v1"
    acked = 3
    for i in range(TRIALS):
        can_roll = (home / "adapters" / "python_coder" / "history").is_file() and \
            len((home / "adapters" / "python_coder" / "history").read_text().split()) >= 2
        if can_roll and rng.random() < 0.4:
            args, target = ["adapters", "rollback", "python_coder"], None
        else:
            target = rng.choice([t for t in ("v1", "v2", "v3") if t != active])
            args = ["adapters", "activate", "python_coder", target]
        run = run_and_kill(args, env, rng=rng, span_s=span, mode="timed", early=0.5, late=1.15)
        tally.trials += 1
        tally.killed += run.killed
        now, problems = adapter_problems(home)
        if run.returncode == 0:
            acked += 1
            if target is not None and now != target:
                problems.append(f"acknowledged activate {target}, active is {now}")
                tally.lost += 1
        elif run.returncode is not None:
            problems.append(f"{args} failed: {run.stderr[-300:]}")
        elif target is not None and now not in (active, target):
            problems.append(f"killed activate {target} from {active} left {now}")
        tally.corrupt += bool(problems)
        tally.problems += problems
        active = now or "none"
    # after all that, a rollback still lands on a whole, registered version
    back = subprocess.run([*EVO, "adapters", "rollback", "python_coder"], env=env, capture_output=True, text=True, timeout=120)
    now, problems = adapter_problems(home)
    if back.returncode not in (0, 2) or "Traceback" in back.stderr or problems:
        tally.corrupt += 1
        tally.problems += [back.stderr[-300:], *problems]
    tally.acknowledged = acked
    tally.finish()


REGISTER = """
import json, shutil, sys
from pathlib import Path
from evo_tr.experts.registry import AdapterRegistry, packaged_root
home, staging = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(staging, ignore_errors=True)
print("writing", flush=True)
shutil.copytree(packaged_root() / "python_coder", staging)  # what `evo train` leaves in its staging folder
meta = json.loads((staging / "metadata.json").read_text())
version = AdapterRegistry(home / "adapters").register("python_coder", staging, meta)
print(version.tag, flush=True)
"""


def test_kill_adapter_registration(tmp_path):
    """The last step of `evo train` (staging folder → next version → active), driven in a subprocess and killed at a
    random moment of its writing (from the copy into staging to the pointer update)."""
    from evo_tr.experts.registry import AdapterRegistry

    home, rng, tally = _adapter_home(tmp_path, versions=1), random.Random(SEED + 6), Tally("adapter registration")
    env = env_for(home)
    staging = home / "staging" / "python_coder"
    cmd = [sys.executable, "-c", REGISTER, str(home), str(staging)]
    registered = {"v1"}
    spans = []
    for _ in range(3):  # how long the writing takes, unkilled
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        began = time.monotonic()
        registered.add(proc.stdout.readline().strip())
        spans.append(time.monotonic() - began)
        assert proc.wait(timeout=60) == 0
    span = sorted(spans)[1]
    for _ in range(TRIALS):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(rng.uniform(0, 1.1) * span)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        out = proc.communicate(timeout=60)[0].strip()
        tally.trials += 1
        tally.killed += killed
        tally.in_write += killed
        now, problems = adapter_problems(home)
        if not killed and proc.returncode == 0:
            registered.add(out)
            if now != out:
                problems.append(f"registered {out} but {now} is active")
        present = {v.tag for v in AdapterRegistry(home / "adapters").versions("python_coder")}
        lost = registered - present
        tally.lost += len(lost)
        problems += [f"lost {t}" for t in lost]
        registered |= present  # a killed registration that finished its rename is a whole version (checked above)
        if now is not None and now not in present | {"v0"}:
            problems.append(f"active {now} is not a registered version")
        tally.corrupt += bool(problems)
        tally.problems += problems
    tally.acknowledged = len(registered)
    tally.finish()


# -- model provisioning -------------------------------------------------------------------------
def test_kill_model_download(tmp_path):
    """`evo models pull` of a Hub model from a real local HTTP stand-in, killed mid-download; the rerun resumes."""
    from evo_tr.models import ModelStore

    smol = ModelStore(load_settings().models_dir).ensure(MODEL)
    hub = StandinHub().start()
    hub.add("evo-test/tiny-GGUF", "tiny.gguf", smol)
    rng, tally = random.Random(SEED + 7), Tally("model download (Hub)")
    try:
        home = tmp_path / "home"
        env = env_for(home, HF_ENDPOINT=hub.url)
        span, _ = timed(["models", "pull", "hf:evo-test/tiny-GGUF/tiny.gguf", "--name", "tiny0"], env)
        acked = 1
        for i in range(1, TRIALS + 1):
            name = f"tiny{i}"
            run = run_and_kill(["models", "pull", "hf:evo-test/tiny-GGUF/tiny.gguf", "--name", name], env, rng=rng, span_s=span, mode="timed")
            tally.trials += 1
            tally.killed += run.killed
            problems = []
            store = ModelStore(load_settings(home=home).models_dir)
            rows = {r.name: r for r in store.list()}
            if run.killed and name in rows and rows[name].present:  # a file at the final path must be the whole model
                try:
                    store.ensure(name)
                except Exception as exc:
                    problems.append(f"{name} is at its final path but {exc}")
            again = subprocess.run([*EVO, "models", "pull", name] if name in rows else
                                   [*EVO, "models", "pull", "hf:evo-test/tiny-GGUF/tiny.gguf", "--name", name],
                                   env=env, capture_output=True, text=True, timeout=300)
            if again.returncode != 0:
                problems.append(f"rerun of pull {name} failed: {again.stderr[-400:]}")
            else:
                acked += 1
            for n in range(i + 1):
                try:
                    ModelStore(load_settings(home=home).models_dir).ensure(f"tiny{n}")
                except Exception as exc:
                    problems.append(f"tiny{n}: {exc}")
                    tally.lost += 1
            tally.corrupt += bool(problems)
            tally.problems += problems
        tally.acknowledged = acked
    finally:
        hub.stop()
    tally.finish()


@pytest.fixture(autouse=True)
def _seeded_note(request):
    """Say which seed a failing campaign used, so it can be replayed with EVO_KILL_SEED."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"replay with EVO_KILL_SEED={SEED} EVO_KILL_TRIALS={TRIALS}")
