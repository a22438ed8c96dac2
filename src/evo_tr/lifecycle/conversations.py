"""Sessions and turns in SQLite (WAL): resumable chats, feedback, proposals and the night's steps (numbered migrations)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evo_tr.config import OWNER_ID
from evo_tr.errors import EvoError

# The tables as version 1 created them (every later change is a numbered migration below); the memory
# write queue's table in the same file belongs to memory/queue.py.
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
    route_source TEXT NOT NULL DEFAULT 'router',
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
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_turn ON feedback(session_id, turn);
CREATE TABLE IF NOT EXISTS night_steps (
    day TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (day, step)
);
CREATE TABLE IF NOT EXISTS night_items (
    day TEXT NOT NULL,
    step TEXT NOT NULL,
    key TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (day, step, key)
);
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    day TEXT NOT NULL,
    expert TEXT NOT NULL,
    kind TEXT NOT NULL,
    messages TEXT NOT NULL,
    session_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    used_in TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (session_id, turn, kind)
);
CREATE TABLE IF NOT EXISTS preference_pairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    day TEXT NOT NULL,
    expert TEXT NOT NULL,
    prompt TEXT NOT NULL,
    chosen TEXT NOT NULL,
    rejected TEXT NOT NULL,
    session_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (session_id, turn)
);
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def day_bounds(day) -> tuple[str, str]:
    """A local calendar day (date or YYYY-MM-DD) as [start, end) ISO timestamps in UTC, as turns are stored."""
    from datetime import date as _date, timedelta

    d = _date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day).astimezone(timezone.utc)
    end = (datetime(d.year, d.month, d.day) + timedelta(days=1)).astimezone(timezone.utc)
    return start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: str
    updated_at: str
    title: str
    model: str
    turns: int = 0
    user: str = OWNER_ID  # whose session it is (evo_tr.users; OWNER_ID = the owner's)

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
    route_source: str = "router"
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

    @classmethod
    def from_stats(cls, stats: Any, message: str, answer: str, *, context: str = "", adapter_version: str | None = None) -> TurnRecord:
        """A turn's record from its measured figures (events.TurnStats): every field both have is copied."""
        own = {f.name for f in fields(cls)} - {"session_id", "number", "message", "answer", "context", "adapter_version", "started_at"}
        values = {name: getattr(stats, name) for name in own if hasattr(stats, name)}
        values["overhead_ms"] = round(stats.overhead_ms, 2)
        return cls(stats.session_id, stats.turn, message, answer, context=context, adapter_version=adapter_version, **values)


FEEDBACK_KINDS = ("good", "bad", "fix", "correction", "repeat", "regenerate")


@dataclass(frozen=True)
class Feedback:
    """A judgement on one turn: explicit (/good, /bad, /fix) or implicit (correction, repeat, regenerate)."""

    session_id: str
    turn: int
    kind: str
    source: str = "explicit"
    reason: str = ""
    text: str = ""  # for "fix": the better answer the user gave
    created_at: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        if self.kind not in FEEDBACK_KINDS:
            raise EvoError(f"Unknown feedback kind {self.kind!r}.", f"Use one of: {', '.join(FEEDBACK_KINDS)}.")

    @property
    def negative(self) -> bool:
        return self.kind != "good"

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
            migrate(self._db())
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
    def create_session(self, session_id: str, *, title: str = "", model: str = "", user: str = OWNER_ID) -> SessionInfo:
        stamp = now_iso()
        with self._tx() as db:
            db.execute("INSERT INTO sessions (id, created_at, updated_at, title, model, user) VALUES (?, ?, ?, ?, ?, ?)",
                       (session_id, stamp, stamp, title, model, user))
        return SessionInfo(session_id, stamp, stamp, title, model, 0, user)

    def get_session(self, session_id: str, *, user: str | None = None) -> SessionInfo | None:
        """The session with this exact id (of `user` only, when given: another user's is None, as a missing one)."""
        row = self._db().execute(
            "SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns FROM sessions s WHERE s.id = ?", (session_id,)
        ).fetchone()
        if row is None or (user is not None and row["user"] != user):
            return None
        return SessionInfo(**dict(row))

    def find_session(self, prefix: str, *, user: str | None = OWNER_ID) -> SessionInfo | None:
        """`user`'s session by exact id, else by a unique prefix (as listings show); ambiguous prefixes are an error."""
        exact = self.get_session(prefix, user=user)
        if exact or not prefix:
            return exact
        sql, args = "SELECT id FROM sessions WHERE id LIKE ? ESCAPE '\\'", [_like_prefix(prefix)]
        if user is not None:
            sql, args = sql + " AND user = ?", args + [user]
        rows = self._db().execute(sql + " LIMIT 3", args).fetchall()
        if len(rows) > 1:
            raise EvoError(f"Session prefix {prefix!r} matches several sessions.", "Give more characters of the id (see /sessions).")
        return self.get_session(rows[0]["id"]) if rows else None

    def list_sessions(self, limit: int = 20, *, user: str | None = OWNER_ID) -> list[SessionInfo]:
        """`user`'s sessions (None: everyone's), most recently active first."""
        where, args = ("WHERE s.user = ? ", [user]) if user is not None else ("", [])
        rows = self._db().execute(
            "SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns FROM sessions s "
            f"{where}ORDER BY s.updated_at DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [SessionInfo(**dict(r)) for r in rows]

    def session_users(self) -> dict[str, str]:
        """Every session id → its user (the night stores what it learns from a turn as that user's)."""
        return {r["id"]: r["user"] for r in self._db().execute("SELECT id, user FROM sessions")}

    def erase_user(self, user: str) -> dict[str, int]:
        """Delete everything of `user`'s conversations: their sessions, turns, feedback, the training proposals and
        preference pairs made from them, and their memory writes still queued. Returns the counts. The freed pages
        still hold the bytes until the file is vacuumed (evo_tr.users.erase does that)."""
        counts: dict[str, int] = {}
        with self._tx() as db:
            owned = "SELECT id FROM sessions WHERE user = ?"
            for table in ("feedback", "proposals", "preference_pairs", "turns"):
                counts[table] = db.execute(f"DELETE FROM {table} WHERE session_id IN ({owned})", (user,)).rowcount
            counts["sessions"] = db.execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount
            queued = 0
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_queue'").fetchone():
                for row in db.execute("SELECT id, payload FROM memory_queue").fetchall():
                    try:
                        mine = json.loads(row["payload"]).get("user_id", OWNER_ID) == user
                    except (ValueError, AttributeError):
                        mine = False
                    if mine:
                        queued += db.execute("DELETE FROM memory_queue WHERE id = ?", (row["id"],)).rowcount
            counts["queued_memory_writes"] = queued
        return counts

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

    # -- feedback -------------------------------------------------------------------------
    def add_feedback(self, fb: "Feedback") -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO feedback (session_id, turn, kind, source, reason, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (fb.session_id, fb.turn, fb.kind, fb.source, fb.reason, fb.text, fb.created_at),
            )
            summary = fb.kind if fb.source == "explicit" else f"{fb.kind} (implicit)"
            db.execute("UPDATE turns SET feedback = ? WHERE session_id = ? AND number = ?", (summary, fb.session_id, fb.turn))
            return int(cur.lastrowid)

    def feedback_for(self, session_id: str, turn: int | None = None) -> list["Feedback"]:
        sql, args = "SELECT * FROM feedback WHERE session_id = ?", [session_id]
        if turn is not None:
            sql, args = sql + " AND turn = ?", args + [turn]
        rows = self._db().execute(sql + " ORDER BY id", args).fetchall()
        return [_feedback(r) for r in rows]

    def stats(self, since: str = "", until: str = "9999") -> dict[str, Any]:
        """Counts and medians over turns started in [since, until) (ISO strings, UTC)."""
        import statistics

        turns = self.turns_between(since, until)
        rows = self._db().execute(
            "SELECT f.kind, f.source, COUNT(*) AS n FROM feedback f JOIN turns t ON t.session_id = f.session_id AND t.number = f.turn "
            "WHERE t.started_at >= ? AND t.started_at < ? GROUP BY f.kind, f.source",
            (since, until),
        ).fetchall()

        def count(values) -> dict[str, int]:
            return dict(Counter(values).most_common())

        ttfts = [t.ttft_ms for t in turns if t.ttft_ms]
        overheads = [t.overhead_ms for t in turns if t.overhead_ms]
        return {
            "turns": len(turns),
            "sessions": len({t.session_id for t in turns}),
            "intents": count(t.intent or "(none)" for t in turns),
            "experts": count(t.expert for t in turns),
            "errors": sum(t.error is not None for t in turns),
            "interrupted": sum(t.interrupted for t in turns),
            "feedback": {f"{r['kind']}{'' if r['source'] == 'explicit' else ' (implicit)'}": r["n"] for r in rows},
            "ttft_ms_p50": round(statistics.median(ttfts), 1) if ttfts else None,
            "overhead_ms_p50": round(statistics.median(overheads), 2) if overheads else None,
            "completion_tokens": sum(t.completion_tokens for t in turns),
        }

    def turns_for_day(self, day) -> list[TurnRecord]:
        """Turns started on a local calendar day."""
        start, end = day_bounds(day)
        return self.turns_between(start, end)

    # -- night runs ---------------------------------------------------------------------------
    def night_step(self, day: str, step: str) -> tuple[str, dict[str, Any]] | None:
        row = self._db().execute("SELECT status, result FROM night_steps WHERE day = ? AND step = ?", (day, step)).fetchone()
        return (row["status"], json.loads(row["result"])) if row else None

    def night_step_set(self, day: str, step: str, status: str, result: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO night_steps (day, step, status, started_at, finished_at, result) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(day, step) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at, result = excluded.result",
                (day, step, status, now_iso(), now_iso() if status == "done" else None, json.dumps(result or {}, ensure_ascii=False, default=str)),
            )

    def night_item(self, day: str, step: str, key: str) -> dict[str, Any] | None:
        row = self._db().execute("SELECT result FROM night_items WHERE day = ? AND step = ? AND key = ?", (day, step, key)).fetchone()
        return json.loads(row["result"]) if row else None

    def night_item_done(self, day: str, step: str, key: str, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO night_items (day, step, key, result) VALUES (?, ?, ?, ?)",
                       (day, step, key, json.dumps(result, ensure_ascii=False, default=str)))

    def night_items(self, day: str, step: str) -> list[dict[str, Any]]:
        rows = self._db().execute("SELECT result FROM night_items WHERE day = ? AND step = ? ORDER BY rowid", (day, step)).fetchall()
        return [json.loads(r["result"]) for r in rows]

    # -- training proposals -------------------------------------------------------------------
    def propose(self, day: str, expert: str, kind: str, messages: list[dict[str, str]], session_id: str, turn: int) -> bool:
        """A candidate training example; the same (session, turn, kind) is proposed once. True if new."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO proposals (day, expert, kind, messages, session_id, turn, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (day, expert, kind, json.dumps(messages, ensure_ascii=False), session_id, turn, now_iso()),
            )
            return cur.rowcount > 0

    def add_preference_pair(self, day: str, expert: str, prompt: str, chosen: str, rejected: str, session_id: str, turn: int) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO preference_pairs (day, expert, prompt, chosen, rejected, session_id, turn, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (day, expert, prompt, chosen, rejected, session_id, turn, now_iso()),
            )
            return cur.rowcount > 0

    def proposals(self, *, status: str | None = None, expert: str | None = None, unused: bool = False) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM proposals WHERE 1 = 1", []
        if status:
            sql, args = sql + " AND status = ?", args + [status]
        if expert:
            sql, args = sql + " AND expert = ?", args + [expert]
        if unused:
            sql += " AND used_in IS NULL"
        rows = self._db().execute(sql + " ORDER BY id", args).fetchall()
        return [{**dict(r), "messages": json.loads(r["messages"])} for r in rows]

    def unknown_proposals(self, ids: list[int], *, expert: str | None = None) -> list[int]:
        """The ids among `ids` that name no proposal (of `expert`), sorted: what a review must refuse."""
        return sorted(set(ids) - {p["id"] for p in self.proposals(expert=expert)})

    def set_proposal_status(self, ids: list[int], status: str) -> int:
        if status not in ("pending", "accepted", "rejected"):
            raise EvoError(f"Unknown proposal status {status!r}.")
        with self._tx() as db:
            return sum(db.execute("UPDATE proposals SET status = ? WHERE id = ?", (status, i)).rowcount for i in ids)

    def mark_proposals_used(self, ids: list[int], version: str) -> None:
        with self._tx() as db:
            db.executemany("UPDATE proposals SET used_in = ? WHERE id = ?", [(version, i) for i in ids])

    def preference_pairs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db().execute("SELECT * FROM preference_pairs ORDER BY id").fetchall()]

    def feedback_between(self, start: str, end: str) -> list["Feedback"]:
        rows = self._db().execute("SELECT * FROM feedback WHERE created_at >= ? AND created_at < ? ORDER BY id", (start, end)).fetchall()
        return [_feedback(r) for r in rows]

    # -- memory retry queue ----------------------------------------------------------------
    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _m1_tables(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)  # CREATE … IF NOT EXISTS: also right for a store that predates numbered migrations


def _m2_route_source(db: sqlite3.Connection) -> None:
    """turns.route_source (router, switch, request, router-failed); version-1 stores made before it lack it."""
    if "route_source" not in {r["name"] for r in db.execute("PRAGMA table_info(turns)")}:
        db.execute("ALTER TABLE turns ADD COLUMN route_source TEXT NOT NULL DEFAULT 'router'")


def _m3_users(db: sqlite3.Connection) -> None:
    """Users of one server (`evo users`, evo_tr.users): each with the SHA-256 of their key (never the key), and
    sessions.user, whose session it is; every session stored before is the owner's ('')."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL DEFAULT 0, "
        "created_at TEXT NOT NULL, key_created_at TEXT NOT NULL)"
    )
    if "user" not in {r["name"] for r in db.execute("PRAGMA table_info(sessions)")}:
        db.execute("ALTER TABLE sessions ADD COLUMN user TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user, updated_at)")


# Numbered migrations, as simonw/llm's migrations.py: the version is read at open (PRAGMA user_version) and
# every later step runs once, in order, each with the version bump in one transaction.
MIGRATIONS = (_m1_tables, _m2_route_source, _m3_users)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the store to SCHEMA_VERSION; returns the version it had. A newer store than this code is refused."""
    have = int(db.execute("PRAGMA user_version").fetchone()[0])
    if have > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {have} is newer than this evo-tr knows ({SCHEMA_VERSION}); upgrade evo-tr")
    for number in range(have, SCHEMA_VERSION):
        MIGRATIONS[number](db)
        db.execute(f"PRAGMA user_version = {number + 1}")
    return have


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _feedback(row: sqlite3.Row) -> Feedback:
    return Feedback(**{k: row[k] for k in row.keys() if k != "id"})


def _record(row: sqlite3.Row) -> TurnRecord:
    data = dict(row)
    data.pop("id", None)
    for key in JSON_FIELDS:
        data[key] = json.loads(data[key] or "[]")
    for key in BOOL_FIELDS:
        data[key] = bool(data[key])
    return TurnRecord(**data)
