"""Sessions and turns in SQLite (WAL): resumable chats, the night's input, and the memory retry queue."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evo_tr.errors import EvoError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    message TEXT NOT NULL,
    answer TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '',
    intent TEXT NOT NULL DEFAULT '',
    confidence REAL,
    routed_fallback INTEGER NOT NULL DEFAULT 0,
    expert TEXT NOT NULL DEFAULT 'base',
    adapter TEXT,
    adapter_version TEXT,
    memory_ids TEXT NOT NULL DEFAULT '[]',
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    ttft_ms REAL,
    e2e_ttft_ms REAL,
    total_ms REAL,
    overhead_ms REAL,
    finish_reason TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    notices TEXT NOT NULL DEFAULT '[]',
    feedback TEXT,
    UNIQUE (session_id, number)
);
CREATE INDEX IF NOT EXISTS turns_started ON turns(started_at);
CREATE TABLE IF NOT EXISTS memory_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: str
    updated_at: str
    title: str
    model: str
    turns: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TurnRecord:
    """One finished (or interrupted, or failed) turn as stored."""

    session_id: str
    number: int
    message: str
    answer: str
    started_at: str = field(default_factory=now_iso)
    context: str = ""
    intent: str = ""
    confidence: float | None = None
    routed_fallback: bool = False
    expert: str = "base"
    adapter: str | None = None
    adapter_version: str | None = None
    memory_ids: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    e2e_ttft_ms: float | None = None
    total_ms: float | None = None
    overhead_ms: float | None = None
    finish_reason: str | None = None
    interrupted: bool = False
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    feedback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


JSON_FIELDS = ("memory_ids", "notices")
BOOL_FIELDS = ("routed_fallback", "interrupted")


class ConversationStore:
    """One SQLite file; every call is its own short transaction, so chat and night can share it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            db = self._db()
            db.executescript(SCHEMA)  # idempotent; executescript runs outside our transactions
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise EvoError(
                f"The conversation store {self.path} is not a readable SQLite database: {exc}",
                "Move the file aside (it is only the chat log) and start again; a new one is created.",
            ) from exc

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- sessions -------------------------------------------------------------------------
    def create_session(self, session_id: str, *, title: str = "", model: str = "") -> SessionInfo:
        stamp = now_iso()
        with self._tx() as db:
            db.execute("INSERT INTO sessions (id, created_at, updated_at, title, model) VALUES (?, ?, ?, ?, ?)", (session_id, stamp, stamp, title, model))
        return SessionInfo(session_id, stamp, stamp, title, model, 0)

    def get_session(self, session_id: str) -> SessionInfo | None:
        row = self._db().execute(
            "SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns FROM sessions s WHERE s.id = ?", (session_id,)
        ).fetchone()
        return SessionInfo(**dict(row)) if row else None

    def find_session(self, prefix: str) -> SessionInfo | None:
        """By exact id, else by a unique prefix (as listings show); ambiguous prefixes are an error."""
        exact = self.get_session(prefix)
        if exact or not prefix:
            return exact
        rows = self._db().execute("SELECT id FROM sessions WHERE id LIKE ? ESCAPE '\\' LIMIT 3", (_like_prefix(prefix),)).fetchall()
        if len(rows) > 1:
            raise EvoError(f"Session prefix {prefix!r} matches several sessions.", "Give more characters of the id (see /sessions).")
        return self.get_session(rows[0]["id"]) if rows else None

    def list_sessions(self, limit: int = 20) -> list[SessionInfo]:
        rows = self._db().execute(
            "SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns FROM sessions s "
            "ORDER BY s.updated_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [SessionInfo(**dict(r)) for r in rows]

    def delete_session(self, session_id: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM turns WHERE session_id = ?", (session_id,))
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def set_title(self, session_id: str, title: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE sessions SET title = ? WHERE id = ? AND title = ''", (title, session_id))

    # -- turns ----------------------------------------------------------------------------
    def record_turn(self, turn: TurnRecord) -> int:
        data = turn.as_dict()
        for key in JSON_FIELDS:
            data[key] = json.dumps(data[key], ensure_ascii=False)
        for key in BOOL_FIELDS:
            data[key] = int(data[key])
        columns = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        with self._tx() as db:
            cur = db.execute(f"INSERT OR REPLACE INTO turns ({columns}) VALUES ({marks})", tuple(data.values()))
            db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now_iso(), turn.session_id))
            return int(cur.lastrowid)

    def turns(self, session_id: str, *, last: int | None = None) -> list[TurnRecord]:
        sql = "SELECT * FROM turns WHERE session_id = ? ORDER BY number"
        rows = self._db().execute(sql, (session_id,)).fetchall()
        if last is not None:
            rows = rows[-last:]
        return [_record(r) for r in rows]

    def turns_between(self, start: str, end: str) -> list[TurnRecord]:
        """Turns whose start time (ISO, UTC) is in [start, end): a day for the night run."""
        rows = self._db().execute("SELECT * FROM turns WHERE started_at >= ? AND started_at < ? ORDER BY started_at", (start, end)).fetchall()
        return [_record(r) for r in rows]

    # -- memory retry queue ----------------------------------------------------------------
    def enqueue_memory(self, kind: str, payload: dict[str, Any], error: str | None = None) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO memory_queue (created_at, kind, payload, attempts, last_error) VALUES (?, ?, ?, ?, ?)",
                (now_iso(), kind, json.dumps(payload, ensure_ascii=False), 1 if error else 0, error),
            )
            return int(cur.lastrowid)

    def pending_memory(self, limit: int = 100) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db().execute("SELECT id, kind, payload FROM memory_queue ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(r["id"], r["kind"], json.loads(r["payload"])) for r in rows]

    def memory_done(self, item_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM memory_queue WHERE id = ?", (item_id,))

    def memory_failed(self, item_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE memory_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, item_id))

    def queue_size(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM memory_queue").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _record(row: sqlite3.Row) -> TurnRecord:
    data = dict(row)
    data.pop("id", None)
    for key in JSON_FIELDS:
        data[key] = json.loads(data[key] or "[]")
    for key in BOOL_FIELDS:
        data[key] = bool(data[key])
    return TurnRecord(**data)
