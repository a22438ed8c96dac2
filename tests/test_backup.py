"""Backup, restore and erase (issue 27 part 7) on the real parts: ChromaDB with the e5 embeddings, SQLite, the `evo` CLI.

Every home here is a fresh tmp folder, handed to the CLI as EVO_HOME (the shared test home is never touched).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import logging.handlers
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from evo_tr.backup import MANIFEST_NAME
from evo_tr.backup.archive import create_backup, restore_backup
from evo_tr.backup.scrub import scrub_chroma, scrub_sqlite
from evo_tr.config import load_settings
from evo_tr.errors import EvoError
from evo_tr.experts.registry import AdapterRegistry
from evo_tr.lifecycle.conversations import ConversationStore, Feedback, TurnRecord
from evo_tr.lifecycle.logger import LOG_NAME, JsonLinesFormatter
from evo_tr.memory.queue import MemoryQueue
from evo_tr.memory.store import MemoryStore

from .conftest import run_evo, run_json

MARKER = "ZEBRA-9431-marker"


def _env(home: Path, config: Path) -> dict[str, str]:
    return {"EVO_HOME": str(home), "EVO_CONFIG": str(config)}


def _settings(monkeypatch, home: Path, config: Path):
    monkeypatch.setenv("EVO_HOME", str(home))
    monkeypatch.setenv("EVO_CONFIG", str(config))
    return load_settings()


def _close(store) -> None:
    """Let go of a Chroma store, and of Chroma's per-path cache, so the next open reads the files again."""
    from chromadb.api.shared_system_client import SharedSystemClient

    store.client.close()
    SharedSystemClient._identifier_to_system.pop(str(store.path), None)


def _files_with(root: Path, needle: bytes) -> list[str]:
    """Every file under root whose raw bytes contain needle (Chroma's sqlite and binary files included)."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return sorted(found)


def _leftovers(parent: Path, *keep: str) -> list[str]:
    """Staging folders or anything else a refused restore may have left beside the home."""
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


def _data_entries(home: Path) -> list[str]:
    """What a home holds besides the log folder every `evo` start creates."""
    return sorted(p.name for p in home.iterdir() if p.name != "logs") if home.exists() else []


# -- a populated home, built once ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A home with memories, a session with a turn and feedback, a queued memory write, an active adapter,
    a knowledge document, a night report, chat history and a config file; plus its plain-tar backup."""
    root = tmp_path_factory.mktemp("backup-src")
    home, config = root / "home", root / "evo.toml"
    config.write_text('system_prompt = "Kısa yanıt ver."\n\n[memory]\ntop_k = 4\n', encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        settings = _settings(mp, home, config)
        store = MemoryStore(settings)
        store.add_memory("Benim adım Kaan ve İzmir'de yaşıyorum.")
        store.add_memory("Kahveyi şekersiz severim.", memory_type="preference")
        store.add_memory("Kedimin adı Pamuk.", {"note": "from the test"})
        conv = ConversationStore(settings.conversations_db)
        conv.create_session("s-backup", title="Deneme", model="smollm2")
        conv.record_turn(TurnRecord("s-backup", 1, "Merhaba, nasılsın?", "İyiyim, teşekkürler!", intent="general_chat", expert="tr_chat"))
        conv.add_feedback(Feedback("s-backup", 1, "fix", text="Daha kısa yanıt ver."))
        MemoryQueue(settings.conversations_db).enqueue("fact", {"text": "Sıradaki bir not."})
        staging = home / "adapters" / "tr_chat" / ".staging"
        staging.mkdir(parents=True)
        (staging / "adapter.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 4)
        AdapterRegistry(home / "adapters").register("tr_chat", staging, {"base": {"name": "smollm2", "sha256": "ab" * 32}})
        from evo_tr.knowledge.store import KnowledgeStore

        doc = root / "notlar.md"
        doc.write_text("# Bahçe\n\nDomatesler haziranda kızarır ve temmuzda toplanır.\n", encoding="utf-8")
        KnowledgeStore(settings, load_pack_now=False).add_file(doc)
        (settings.reports_dir / "2026-12-01").mkdir(parents=True)
        (settings.reports_dir / "2026-12-01" / "report.json").write_text('{"day": "2026-12-01"}')
        settings.history_file.write_text("\n# 2026-12-01\n+Merhaba\n", encoding="utf-8")
        plain = root / "backup.tar"
        create_backup(settings, plain)
        memories = sorted((m.id, m.text, m.metadata()) for m in store.all())
        _close(store)
    return {"root": root, "home": home, "config": config, "settings": settings, "plain": plain, "memories": memories}


def test_backup_restore_elsewhere_is_identical(source, tmp_path, monkeypatch):
    archive = tmp_path / "evo.tar.gz"
    made = run_json("backup", str(archive), "--json", env=_env(source["home"], source["config"]))
    assert made["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest() and made["bytes"] == archive.stat().st_size
    assert archive.read_bytes()[:2] == b"\x1f\x8b"  # .tar.gz: gzip chosen by the name
    assert made["counts"]["memories"] == 3 and made["counts"]["turns"] == 1 and made["counts"]["feedback"] == 1
    assert made["knowledge"] == "documents" and made["counts"]["knowledge_documents"] == 1
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST_NAME).read())
    assert names[0] == MANIFEST_NAME and all(not n.startswith("home/models/") or n == "home/models/registry.json" for n in names)
    assert {"format_version", "created_at", "evo_tr_version"} <= set(manifest) and len(manifest["files"]) == made["files"]
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in manifest["files"])
    assert not any(n.endswith(("writer.lock", "-wal", "-shm")) for n in names)

    # Another machine: another EVO_HOME, another config location.
    home, config = tmp_path / "elsewhere" / "home", tmp_path / "elsewhere" / "config" / "evo.toml"
    done = run_json("restore", str(archive), "--json", env=_env(home, config))
    assert done["files"] == made["files"] and done["moved_aside"] is None and done["counts"]["memories"] == 3
    assert config.read_bytes() == source["config"].read_bytes()

    settings = _settings(monkeypatch, home, config)
    store = MemoryStore(settings)
    assert sorted((m.id, m.text, m.metadata()) for m in store.all()) == source["memories"]
    hits = store.search("Benim adım ne?", 1)
    assert hits and "Kaan" in hits[0].memory.text
    _close(store)
    old, new = ConversationStore(source["home"] / "conversations.db"), ConversationStore(settings.conversations_db)
    assert [s.as_dict() for s in new.list_sessions()] == [s.as_dict() for s in old.list_sessions()]
    assert [t.as_dict() for t in new.turns("s-backup")] == [t.as_dict() for t in old.turns("s-backup")]
    assert [f.as_dict() for f in new.feedback_for("s-backup")] == [f.as_dict() for f in old.feedback_for("s-backup")]
    assert MemoryQueue(settings.conversations_db).pending() == MemoryQueue(source["home"] / "conversations.db").pending()
    active = AdapterRegistry(home / "adapters").active("tr_chat")
    assert active is not None and active.tag == "v1" and active.meta["base"]["sha256"] == "ab" * 32
    assert active.gguf.read_bytes() == (source["home"] / "adapters" / "tr_chat" / "v1" / "adapter.gguf").read_bytes()
    assert settings.history_file.read_text(encoding="utf-8") == source["settings"].history_file.read_text(encoding="utf-8")
    assert (settings.reports_dir / "2026-12-01" / "report.json").is_file()
    from evo_tr.knowledge.store import KnowledgeStore

    knowledge = KnowledgeStore(settings, load_pack_now=False)
    assert [d.path for d in knowledge.documents()] == [str((source["root"] / "notlar.md").resolve())]
    assert any("Domatesler" in h.memory.text for h in knowledge.search("domates ne zaman kızarır", 3, include_pack=False))

    # The home holds data now: refused without --force; with it the old data is moved aside, not deleted.
    again = run_evo("restore", str(archive), env=_env(home, config))
    assert again.returncode == 2 and "already holds data" in again.stderr and "Traceback" not in again.stderr
    forced = run_json("restore", str(archive), "--force", "--json", env=_env(home, config))
    aside = Path(forced["moved_aside"])
    assert aside.parent == home.parent and (aside / "memory" / "chroma" / "chroma.sqlite3").is_file()
    assert (aside / "conversations.db").is_file() and (home / "conversations.db").is_file()


def _member_offset(archive: Path, name: str) -> int:
    with tarfile.open(archive) as tar:
        return tar.getmember(name).offset_data


def test_tampered_or_truncated_archive_is_refused_and_nothing_written(source, tmp_path):
    parent = tmp_path / "target"
    parent.mkdir()
    home, config = parent / "home", tmp_path / "evo.toml"

    tampered = tmp_path / "tampered.tar"
    data = bytearray(source["plain"].read_bytes())
    data[_member_offset(source["plain"], "home/conversations.db") + 200] ^= 0x01
    tampered.write_bytes(bytes(data))
    proc = run_evo("restore", str(tampered), env=_env(home, config))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'home/conversations.db'" in proc.stderr and "sha256" in proc.stderr and "Traceback" not in proc.stderr
    assert _data_entries(home) == [] and not config.exists() and _leftovers(parent, "home") == []

    whole = source["plain"].read_bytes()
    with tarfile.open(source["plain"]) as tar:
        last = tar.getmembers()[-1]
    for cut in (len(whole) // 2, last.offset):  # mid-member, and cleanly before the last member
        short = tmp_path / f"short-{cut}.tar"
        short.write_bytes(whole[:cut])
        with pytest.raises(EvoError, match="truncated or damaged"):
            restore_backup(source["settings"].model_copy(update={"home": home}), short)
        assert _data_entries(home) == [] and _leftovers(parent, "home") == []

    gz = tmp_path / "evo.tar.gz"
    with open(source["plain"], "rb") as src, gzip.open(gz, "wb") as out:
        shutil.copyfileobj(src, out)
    cut_gz = tmp_path / "cut.tar.gz"
    cut_gz.write_bytes(gz.read_bytes()[: gz.stat().st_size * 2 // 3])
    proc = run_evo("restore", str(cut_gz), env=_env(home, config))
    assert proc.returncode == 2 and "truncated or damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert _data_entries(home) == [] and _leftovers(parent, "home") == []
    assert run_json("restore", str(gz), "--check", "--json", env=_env(home, config))["files"] > 0  # the intact one passes
    assert _data_entries(home) == []


def _tar(path: Path, members: dict[str, bytes], listed: dict[str, bytes] | None = None, *, link: str | None = None) -> Path:
    """A hand-made archive: a manifest listing `listed` (default: the members, with their true sha256), then the members."""
    listed = members if listed is None else listed
    manifest = {"format": "evo-tr-backup", "format_version": 1, "created_at": "2026-12-01T00:00:00+00:00", "evo_tr_version": "0",
                "files": [{"path": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in listed.items()]}
    with tarfile.open(path, "w") as tar:
        for name, data in [(MANIFEST_NAME, json.dumps(manifest).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def test_path_traversal_members_are_refused(source, tmp_path):
    parent = tmp_path / "target"
    parent.mkdir()
    home, config = parent / "home", tmp_path / "evo.toml"
    evil = _tar(tmp_path / "evil.tar", {"../x": b"pwned"})
    proc = run_evo("restore", str(evil), env=_env(home, config))
    assert proc.returncode == 2 and "unsafe member '../x'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (parent / "x").exists() and not (tmp_path / "x").exists() and _data_entries(home) == []

    settings = source["settings"].model_copy(update={"home": home})
    fine = {"home/reports/a.json": b"{}"}
    for name, archive in [
        ("home/../../x", _tar(tmp_path / "a.tar", {"home/../../x": b"x"})),
        ("/etc/x", _tar(tmp_path / "b.tar", {"/etc/x": b"x"})),
        ("../x", _tar(tmp_path / "c.tar", {**fine, "../x": b"x"}, fine)),  # listed nowhere, member only
        ("home/link", _tar(tmp_path / "d.tar", fine, link="home/link")),  # a symlink member
    ]:
        with pytest.raises(EvoError) as caught:
            restore_backup(settings, archive)
        assert name in caught.value.message, caught.value.message
        assert _data_entries(home) == [] and _leftovers(parent, "home") == []


def test_erase_leaves_no_trace_and_the_store_works_after(tmp_path, monkeypatch):
    home, config = tmp_path / "home", tmp_path / "evo.toml"
    config.write_text(f'system_prompt = "Sen {MARKER} adlı asistansın."\n', encoding="utf-8")
    settings = _settings(monkeypatch, home, config)
    store = MemoryStore(settings)
    store.add_memory(f"Gizli parolam {MARKER} olsun.")
    store.add_memory("Kahveyi şekersiz severim.", memory_type="preference")
    conv = ConversationStore(settings.conversations_db)
    conv.create_session("s1", title=f"Parola {MARKER}")
    conv.record_turn(TurnRecord("s1", 1, f"Parolam {MARKER}, unutma.", f"Tamam, {MARKER} parolanı hatırlayacağım."))
    conv.add_feedback(Feedback("s1", 1, "fix", text=f"{MARKER} deme"))
    queue = MemoryQueue(settings.conversations_db)
    queue.enqueue("fact", {"text": MARKER})
    queue.close()  # conv stays open: its write-ahead log file is there, as a crashed chat leaves it
    (home / "logs").mkdir()
    handler = logging.handlers.RotatingFileHandler(home / "logs" / LOG_NAME, encoding="utf-8")  # as setup_logging writes it
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("evo_tr.test_backup_marker")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.info("turn message: %s", MARKER)
    logger.removeHandler(handler)
    handler.close()
    from prompt_toolkit.history import FileHistory

    FileHistory(str(settings.history_file)).append_string(f"Parolam {MARKER}")
    (home / "training" / "tr_chat").mkdir(parents=True)
    (home / "training" / "tr_chat" / "mine.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": MARKER}]}))
    (home / "models" / "fake").mkdir(parents=True)
    (home / "models" / "fake" / "fake.gguf").write_bytes(b"GGUF" + bytes(1000))
    _close(store)
    before = _files_with(home, MARKER.encode())
    assert {"memory/chroma/chroma.sqlite3", f"logs/{LOG_NAME}", "chat_history.txt"} <= set(before), before
    assert any(name.startswith("conversations.db") for name in before), before  # the file or its write-ahead log

    out = run_json("erase", "--yes", "--json", env=_env(home, config))
    assert {"memory", "conversations.db", "logs", "chat_history.txt", "training"} <= set(out["removed"]) and str(config) in out["removed"]
    assert _files_with(home, MARKER.encode()) == [] and not config.exists()
    assert out["kept"] == ["models"] and (home / "models" / "fake" / "fake.gguf").is_file()
    refused = run_evo("erase", env=_env(home, config))  # no terminal, no --yes: asks nobody, erases nothing
    assert refused.returncode == 2 and "--yes" in refused.stderr and (home / "models" / "fake" / "fake.gguf").is_file()

    store = MemoryStore(settings)
    assert store.count() == 0
    added = store.add_memory("Yeni başlangıç: bahçede domates yetiştiriyorum.")
    hits = store.search("bahçede ne yetiştiriyorum?", 1)
    assert hits and hits[0].memory.id == added.id
    assert ConversationStore(settings.conversations_db).list_sessions() == []
    _close(store)


def test_scrub_after_partial_delete(tmp_path, monkeypatch):
    home = tmp_path / "home"
    settings = _settings(monkeypatch, home, tmp_path / "evo.toml")
    store = MemoryStore(settings)
    gone = store.add_memory("Eski adresim ZEBRA-AAAA-marker sokağıydı.")
    kept = store.add_memory("Yeni komşumun adı KOALA-BBBB-marker.")
    store.delete([gone.id])
    # Deleting through Chroma is not enough: its log table and free pages still hold the text.
    assert "memory/chroma/chroma.sqlite3" in _files_with(home, b"ZEBRA-AAAA")
    result = scrub_chroma(store.path)
    assert result.queue_rows_purged >= 1 and "embedding_fulltext_search" in result.fts_optimized
    assert _files_with(home, b"ZEBRA-AAAA") == []
    assert "memory/chroma/chroma.sqlite3" in _files_with(home, b"KOALA-BBBB")
    hits = store.search("komşumun adı ne?", 1)  # the open store goes on working
    assert hits and hits[0].memory.id == kept.id
    _close(store)
    reopened = MemoryStore(settings)
    assert reopened.count() == 1 and reopened.search("komşumun adı", 1)[0].memory.id == kept.id
    reopened.add_memory("Bir not daha.")
    assert reopened.count() == 2
    _close(reopened)

    conv = ConversationStore(settings.conversations_db)
    for sid, marker in (("a", "ZEBRA-CCCC-marker"), ("b", "KOALA-DDDD-marker")):
        conv.create_session(sid)
        conv.record_turn(TurnRecord(sid, 1, f"Bu {marker} mesajı.", "Tamam."))
    conv.delete_session("a")
    assert _files_with(home, b"ZEBRA-CCCC")  # in the write-ahead log or a free page
    scrubbed = scrub_sqlite(settings.conversations_db)
    assert scrubbed.wal_truncated and _files_with(home, b"ZEBRA-CCCC") == []
    assert _files_with(home, b"KOALA-DDDD") == ["conversations.db"] and [t.message for t in conv.turns("b")] == ["Bu KOALA-DDDD-marker mesajı."]
