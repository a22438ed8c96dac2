"""The durable memory write queue: every memory write of a turn is first a row here, then applied to the store.

It lives in the conversation database (one SQLite file per data dir, WAL) but belongs to memory: a store
that is down or locked only delays its writes, which the next turn (or process) applies in order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
"""


class MemoryQueue:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._db().executescript(QUEUE_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
        return db

    def enqueue(self, kind: str, payload: dict[str, Any], error: str | None = None) -> int:
        cur = self._db().execute(
            "INSERT INTO memory_queue (created_at, kind, payload, attempts, last_error) VALUES (?, ?, ?, ?, ?)",
            (datetime.now(timezone.utc).isoformat(timespec="milliseconds"), kind, json.dumps(payload, ensure_ascii=False),
             1 if error else 0, error),
        )
        return int(cur.lastrowid)

    def pending(self, limit: int = 100) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db().execute("SELECT id, kind, payload FROM memory_queue ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(r["id"], r["kind"], json.loads(r["payload"])) for r in rows]

    def done(self, item_id: int) -> None:
        self._db().execute("DELETE FROM memory_queue WHERE id = ?", (item_id,))

    def failed(self, item_id: int, error: str) -> None:
        self._db().execute("UPDATE memory_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, item_id))

    def size(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM memory_queue").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
