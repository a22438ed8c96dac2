"""Lifecycle: conversation log, feedback, night mode (real model, real Chroma, real sandbox), gate, scheduler, logs."""

from __future__ import annotations

import json
import os
import plistlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from evo_tr.config import load_settings
from evo_tr.engine import GenerationConfig
from evo_tr.experts import registry
from evo_tr.experts.data import packaged_dir
from evo_tr.lifecycle import ConversationStore, Feedback, TurnRecord
from evo_tr.lifecycle import schedule
from evo_tr.lifecycle.logger import LOG_NAME, setup_logging
from evo_tr.lifecycle.night import retrain_expert
from evo_tr.lifecycle.signals import implicit_feedback
from evo_tr.memory.store import MemoryStore
from evo_tr.orchestrator import Done, Orchestrator

from .conftest import EVO, MODEL, run_evo, run_json

BUGGY = "```python\ndef add(a, b):\n    return a - b\n\nassert add(2, 3) == 5\n```"
FIXED = "```python\ndef add(a, b):\n    return a + b\n```"


def at(day: str, hour: int, minute: int = 0) -> str:
    """A local time of `day` as the store writes it (UTC ISO)."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00").astimezone(timezone.utc).isoformat(timespec="milliseconds")


def synthetic_day(home: Path, day: str) -> dict[str, str]:
    """Three sessions: facts, a wrong code answer the sandbox catches with /bad and /fix, and a good answer."""
    store = ConversationStore(home / "conversations.db")
    ids = {k: f"{day.replace('-', '')}-{k}" for k in ("facts", "code", "chat")}
    for sid in ids.values():
        store.create_session(sid, model=MODEL)
    turns = [
        TurnRecord(ids["facts"], 1, "Merhaba! Benim adım Deniz.", "Merhaba Deniz!", started_at=at(day, 9), intent="general_chat", confidence=0.95, expert="tr_chat"),
        TurnRecord(ids["facts"], 2, "Ankara'da yaşıyorum ve öğretmenim.", "Ne güzel!", started_at=at(day, 9, 1), intent="general_chat", confidence=0.9, expert="tr_chat"),
        TurnRecord(ids["code"], 1, "İki sayıyı toplayan bir Python fonksiyonu yaz.", BUGGY, started_at=at(day, 14), intent="code_python", confidence=0.97, expert="python_coder"),
        TurnRecord(ids["chat"], 1, "Çay mı kahve mi?", "İkisi de güzel; akşam çay, sabah kahve.", started_at=at(day, 20), intent="general_chat", confidence=0.55, expert="tr_chat"),
    ]
    for t in turns:
        store.record_turn(t)
    store.add_feedback(Feedback(ids["code"], 1, "bad", reason="toplama yerine çıkarma yapıyor"))
    store.add_feedback(Feedback(ids["code"], 1, "fix", text=FIXED))
    store.add_feedback(Feedback(ids["chat"], 1, "good"))
    return ids


def night_env(**extra: str) -> dict[str, str]:
    return {"EVO_NIGHT__RETRAIN": "false", "EVO_NIGHT__EXTRACTION_MAX_TOKENS": "48", **extra}


def test_night_learns_from_a_synthetic_day_and_a_second_run_adds_nothing(evo_home):
    day = "2026-03-02"
    ids = synthetic_day(evo_home, day)
    first = run_json("night", "--date", day, "--json", env=night_env(), timeout=600)
    # Facts are in memory with provenance.
    added = {m["text"]: m for m in first["extract"]["added"]}
    assert "Kullanıcının adı Deniz." in added
    store = MemoryStore(load_settings())
    fact = store.get(added["Kullanıcının adı Deniz."]["id"])
    assert (fact.source, fact.session, fact.turn) == ("night", ids["facts"], 1) and fact.extra["night"] == day
    assert any("Ankara" in t for t in added)
    # The wrong code answer was run and its failure is in the report.
    failed = [c for c in first["analyze"]["code"] if not c["ok"]]
    assert failed and failed[0]["session"] == ids["code"] and "AssertionError" in failed[0]["error"]
    report_md = (evo_home / "reports" / day / "report.md").read_text()
    assert "return a - b" in report_md and "AssertionError" in report_md
    assert {p.name for p in (evo_home / "reports" / day).iterdir()} >= {"report.md", "report.json", "intents.png", "feedback.png", "eval.png"}
    assert any(m["session"] == ids["chat"] and "low confidence" in m["reason"] for m in first["analyze"]["misroutes"])
    # /fix became a pending training example and a preference pair; /good a pending example too.
    db = ConversationStore(evo_home / "conversations.db")
    proposals = {(p["session_id"], p["kind"]): p for p in db.proposals(status="pending")}
    fix = proposals[(ids["code"], "fix")]
    assert fix["expert"] == "python_coder" and fix["messages"][-1]["content"] == FIXED
    assert (ids["chat"], "good") in proposals
    pairs = [p for p in db.preference_pairs() if p["session_id"] == ids["code"]]
    assert len(pairs) == 1 and pairs[0]["chosen"] == FIXED and pairs[0]["rejected"] == BUGGY
    # A second run of the same day adds nothing.
    memories_before, proposals_before = store.count(), len(db.proposals())
    run_json("night", "--date", day, "--json", env=night_env(), timeout=600)
    assert MemoryStore(load_settings()).count() == memories_before
    assert len(db.proposals()) == proposals_before and len([p for p in db.preference_pairs() if p["session_id"] == ids["code"]]) == 1


def test_a_resumed_extract_counts_each_session_s_skipped_facts_once(evo_home):
    """The step's total is the sum of its sessions' own counts, however often the step is resumed."""
    from evo_tr.lifecycle.night import run_night

    day = "2026-03-11"  # a day no other test of this shared data dir uses
    store = ConversationStore(evo_home / "conversations.db")
    for n, sid in enumerate(("dup-a", "dup-b", "dup-c")):
        store.create_session(sid, model=MODEL)
        store.record_turn(TurnRecord(sid, 1, "Benim adım Zerrin.", "Memnun oldum.", started_at=at(day, 10, n), intent="general_chat", expert="tr_chat"))
    settings = load_settings(home=evo_home, model=MODEL)
    settings.night.llm_extraction = False
    settings.night.retrain = False
    first = run_night(settings, day)["extract"]
    assert len(first["added"]) == 1 and first["duplicates_skipped"] == 2  # the same fact from three sessions
    store.night_step_set(day, "extract", "running")  # as if killed after its sessions, before the step was marked done
    again = run_night(settings, day)["extract"]
    assert again["duplicates_skipped"] == 2 and [a["id"] for a in again["added"]] == [a["id"] for a in first["added"]]


def test_a_night_killed_in_the_middle_resumes_and_completes(evo_home):
    day = "2026-03-03"
    synthetic_day(evo_home, day)
    env = {**os.environ, **night_env()}
    proc = subprocess.Popen([*EVO, "night", "--date", day, "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite3.connect(evo_home / "conversations.db", timeout=10)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it as soon as the first step has finished
        row = db.execute("SELECT status FROM night_steps WHERE day = ? AND step = 'analyze'", (day,)).fetchone()
        if row and row[0] == "done":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = dict(db.execute("SELECT step, status FROM night_steps WHERE day = ?", (day,)).fetchall())
    assert steps.get("analyze") == "done" and steps.get("report") != "done"
    result = run_json("night", "--date", day, "--json", env=night_env(), timeout=600)
    assert set(result["seconds"]) == {"extract", "propose", "retrain", "report"} - {s for s, v in steps.items() if v == "done"}
    assert (evo_home / "reports" / day / "report.json").is_file()
    done = dict(db.execute("SELECT step, status FROM night_steps WHERE day = ?", (day,)).fetchall())
    assert set(done.values()) == {"done"} and len(done) == 5


def test_only_one_night_runs_at_a_time(evo_home):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'a+'); fcntl.flock(f, fcntl.LOCK_EX); print('x', flush=True); time.sleep(60)",
         str(evo_home / "night.lock")], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        proc = run_evo("night", "--date", "2026-03-09", env=night_env())
        assert proc.returncode != 0 and "Another night run is in progress" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_dry_run_writes_nothing(evo_home):
    day = "2026-03-04"
    synthetic_day(evo_home, day)
    count = MemoryStore(load_settings()).count()
    out = run_json("night", "--date", day, "--dry-run", "--json", env=night_env())
    assert out["dry_run"] and "Kullanıcının adı Deniz." in out["extract"]["candidates"]
    assert MemoryStore(load_settings()).count() == count
    assert not (evo_home / "reports" / day).exists()
    assert ConversationStore(evo_home / "conversations.db").night_step(day, "analyze") is None


def test_bad_date_is_a_clear_error():
    proc = run_evo("night", "--date", "yesterday-ish")
    assert proc.returncode == 2 and "YYYY-MM-DD" in proc.stderr and "Traceback" not in proc.stderr


# -- review and retraining ------------------------------------------------------------------------------
def test_data_review_accepts_and_rejects(evo_home):
    db = ConversationStore(evo_home / "conversations.db")
    db.create_session("review-s", model=MODEL)
    for i in range(3):
        db.propose("2026-03-05", "tr_chat", "good", [{"role": "user", "content": f"Soru {i}"}, {"role": "assistant", "content": f"Cevap {i}"}], "review-s", i)
    ids = [p["id"] for p in db.proposals(status="pending", expert="tr_chat") if p["session_id"] == "review-s"]
    out = run_json("data", "review", "--expert", "tr_chat", "--accept", str(ids[0]), "--reject", str(ids[1]), "--json")
    assert out["changed"] == 2
    status = {p["id"]: p["status"] for p in db.proposals(expert="tr_chat")}
    assert (status[ids[0]], status[ids[1]], status[ids[2]]) == ("accepted", "rejected", "pending")
    proc = run_evo("data", "review", "--accept", "999999")
    assert proc.returncode == 2 and "No proposal with id 999999" in proc.stderr


def _retrain_settings(home: Path, shared: Path):
    """Settings for a retrain in `home`; the torch copy of the test model comes from the session's test home
    (`shared`), where it is converted once, instead of being converted again for every test."""
    (shared / "torch").mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "torch").exists():
        (home / "torch").symlink_to(shared / "torch", target_is_directory=True)
    s = load_settings(home=home, model=MODEL)
    s.night.retrain_max_steps = 3  # the path train → gate → promote/reject, not what it learns (test_experts.py checks that)
    s.night.retrain_lr = 2e-3
    s.night.gate_examples = 8
    return s


def test_retrain_runs_end_to_end_and_the_gate_rejects_a_bad_candidate(tmp_path, evo_home):
    settings = _retrain_settings(tmp_path / "home", evo_home)
    (tmp_path / "home" / "models").mkdir(parents=True)  # the test model is used in place from its package
    rows = [json.loads(line) for f in sorted(packaged_dir("tr_chat").glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    small = tmp_path / "tr_chat_small.jsonl"  # a slice of the real data keeps the test short
    small.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[::8]) + "\n")
    good = [[{"role": "user", "content": "Günaydın!"}, {"role": "assistant", "content": "Günaydın! Bugün nasıl yardımcı olabilirim?"}]] * 4
    result = retrain_expert(settings, "tr_chat", good, base_data=small)
    reg = registry(settings)
    candidate = reg.get("tr_chat", result["candidate"])
    assert result["action"] in ("promoted", "rejected") and (candidate.path / "gate.json").is_file()
    assert result["candidate_loss"] > 0 and result["active_loss"] > 0
    active = reg.active("tr_chat")
    assert (active is not None and active.tag == candidate.tag) == (result["action"] == "promoted")


@pytest.mark.slow
def test_the_gate_rejects_a_candidate_trained_on_shuffled_answers(tmp_path, evo_home):
    """Every prompt paired with another prompt's answer: the candidate's answers depend less on the question."""
    settings = _retrain_settings(tmp_path / "home", evo_home)
    (tmp_path / "home" / "models").mkdir(parents=True)
    rows = [json.loads(line) for f in sorted(packaged_dir("tr_chat").glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    reg = registry(settings)
    rows = rows[::4]
    answers = [r["messages"][-1]["content"] for r in rows]
    random.Random(0).shuffle(answers)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(json.dumps({"messages": [*r["messages"][:-1], {"role": "assistant", "content": a}]}, ensure_ascii=False)
                                  for r, a in zip(rows, answers)) + "\n")
    before = reg.active("tr_chat")
    settings.night.retrain_max_steps, settings.night.gate_examples = 12, 16
    bad = retrain_expert(settings, "tr_chat", [], base_data=shuffled)
    assert bad["action"] == "rejected" and bad["candidate_prompt_gain"] < bad["active_prompt_gain"] * 0.9, bad
    after = reg.active("tr_chat")
    assert (after.tag if after else None) == (before.tag if before else None)


# -- feedback, implicit signals, logs ---------------------------------------------------------------
@pytest.mark.parametrize("text,previous,expected", [
    ("Hayır, öyle değil.", "Başkent neresi?", "correction"),
    ("Bu yanlış, İstanbul başkent değil.", "Başkent neresi?", "correction"),
    ("That's wrong.", "What is 2+2?", "correction"),
    ("Python'da liste nasıl sıralanır?", "Python'da listeyi nasıl sıralarım?", "repeat"),
    ("Teşekkürler!", "Python'da liste nasıl sıralanır?", None),
])
def test_implicit_feedback_signals(text, previous, expected):
    assert implicit_feedback(text, previous) == expected


def test_feedback_explicit_implicit_and_regenerate_are_recorded(engine, tmp_path):
    settings = load_settings(home=tmp_path, model=MODEL)
    settings.memory.enabled = False
    orch = Orchestrator.build(settings, engine, GenerationConfig(max_tokens=8, temperature=0.0, seed=0), model=MODEL, memory=False)
    session = orch.new_session()
    list(orch.turn(session.id, "Türkiye'nin başkenti neresi?"))
    orch.feedback(session.id, "good")
    list(orch.turn(session.id, "Hayır, yanlış."))  # says turn 2's predecessor was wrong
    list(orch.turn(session.id, "Peki en kalabalık şehir hangisi?"))
    list(orch.turn(session.id, "En kalabalık şehir hangisi?"))  # asked again: turn 3 did not satisfy
    orch.feedback(session.id, "fix", text="İstanbul.")
    events = list(orch.regenerate(session.id))
    assert [e for e in events if isinstance(e, Done)][0].stats.turn == 5
    fb = {(f.turn, f.kind, f.source) for f in orch.conversations.feedback_for(session.id)}
    assert fb == {(1, "good", "explicit"), (1, "correction", "implicit"), (3, "repeat", "implicit"), (4, "fix", "explicit"), (4, "regenerate", "implicit")}
    with pytest.raises(Exception, match="needs the better answer"):
        orch.feedback(session.id, "fix", text=" ")
    assert orch.conversations.turns(session.id)[0].feedback == "correction (implicit)"
    orch.close()


def test_chat_feedback_commands(evo_home):
    script = "\n".join(["Merhaba!", "/good", "/bad kısa oldu", "/fix Merhaba! Size nasıl yardımcı olabilirim?", "/retry", "/quit"]) + "\n"
    proc = run_evo("chat", input=script, env={"EVO_GENERATION__MAX_TOKENS": "6"})
    assert proc.returncode == 0, proc.stderr
    assert "👍 noted" in proc.stdout and "👎 noted" in proc.stdout and "correction kept" in proc.stdout
    show = run_json("logs", "show", run_json("sessions", "list", "--json")[0]["id"], "--json")
    assert [t["number"] for t in show["turns"]] == [1, 2] and show["turns"][1]["message"] == "Merhaba!"
    assert [f["kind"] for f in show["feedback"]] == ["good", "bad", "fix", "regenerate"]


def test_logs_stats_tail_and_rotation(evo_home, tmp_path):
    stats = run_json("logs", "stats", "--json")
    assert stats["turns"] > 0 and stats["experts"] and "feedback" in stats
    entries = run_json("logs", "tail", "-n", "5", "--json")
    assert entries and all("ts" in e and "level" in e for e in entries)
    assert any(e.get("event") == "turn" for e in run_json("logs", "tail", "-n", "200", "--json"))
    # Rotation by size, pruning by age.
    settings = load_settings(home=tmp_path / "h")
    settings.logs.max_bytes, settings.logs.backups = 10_000, 3
    logs = tmp_path / "h" / "logs"
    logs.mkdir(parents=True)
    old = logs / f"{LOG_NAME}.9"
    old.write_text("{}\n")
    os.utime(old, (time.time() - 90 * 86400,) * 2)
    setup_logging(settings)
    assert not old.exists()
    import logging

    for i in range(400):
        logging.getLogger("evo_tr.test").info("line %d %s", i, "x" * 60, extra={"event": "test"})
    files = sorted(p.name for p in logs.iterdir())
    assert LOG_NAME in files and f"{LOG_NAME}.1" in files and len(files) <= 4
    assert json.loads((logs / LOG_NAME).read_text().splitlines()[-1])["event"] == "test"
    setup_logging(load_settings())  # back to the test home's log


# -- scheduler -----------------------------------------------------------------------------------------
def test_schedule_files_for_systemd_launchd_and_cron(tmp_path):
    home = tmp_path / "evo"
    systemd = schedule.plan("systemd", "04:30", home, tmp_path)
    service, timer = (systemd.files[tmp_path / ".config/systemd/user" / f"evo-night.{k}"] for k in ("service", "timer"))
    assert "OnCalendar=*-*-* 04:30:00" in timer and "Persistent=true" in timer
    assert f"ExecStart={sys.executable} -m evo_tr night" in service and f"Environment=EVO_HOME={home}" in service
    launchd = schedule.plan("launchd", "03:05", home, tmp_path)
    plist = plistlib.loads(next(iter(launchd.files.values())).encode())
    assert plist["Label"] == "com.evotr.night-analysis" and plist["StartCalendarInterval"] == {"Hour": 3, "Minute": 5}
    assert plist["ProgramArguments"] == [sys.executable, "-m", "evo_tr", "night"] and plist["EnvironmentVariables"]["EVO_HOME"] == str(home)
    cron = schedule.plan("cron", "03:00", home, tmp_path)
    assert cron.cron_line.startswith("0 3 * * * EVO_HOME=") and cron.cron_line.endswith(schedule.CRON_MARKER)
    with pytest.raises(Exception, match="HH:MM"):
        schedule.plan("cron", "25:00", home, tmp_path)


def test_schedule_cli_install_status_remove_systemd(tmp_path):
    env = {"HOME": str(tmp_path)}
    proc = run_evo("schedule", "install", "--kind", "systemd", "--at", "02:15", env=env)
    assert proc.returncode == 0, proc.stderr
    timer = tmp_path / ".config/systemd/user/evo-night.timer"
    assert "OnCalendar=*-*-* 02:15:00" in timer.read_text()
    assert "systemctl --user enable --now evo-night.timer" in proc.stdout  # ran, or told to run it
    status = run_json("schedule", "status", "--kind", "systemd", "--json", env=env)
    assert status["installed"] and status["at"] == "02:15"
    assert run_evo("schedule", "remove", "--kind", "systemd", env=env).returncode == 0
    assert not timer.exists() and not run_json("schedule", "status", "--kind", "systemd", "--json", env=env)["installed"]
    printed = run_evo("schedule", "install", "--kind", "launchd", "--print", env=env)
    assert "com.evotr.night-analysis" in printed.stdout and not (tmp_path / "Library").exists()
