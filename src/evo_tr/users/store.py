"""The users table: a name, an admin flag and the SHA-256 of a random key per user (the key is shown once).

A key is `evo-` + secrets.token_urlsafe(32) (256 random bits), so a plain SHA-256 is the right hash: there is
nothing to brute-force that a slow password hash would protect, and a lookup by hash takes one index probe
whose timing says nothing about the key. The table lives in conversations.db (numbered migration 3), next to
the sessions it owns.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evo_tr.config import (
    OWNER_ID,
    OWNER_NAME,
    USER_KEY_BYTES,
    USER_KEY_PREFIX,
    USER_NAME_PATTERN,
)
from evo_tr.errors import EvoError
from evo_tr.lifecycle.conversations import migrate, now_iso
from evo_tr.text import turkish_lower

_NAME = re.compile(USER_NAME_PATTERN)


@dataclass(frozen=True)
class User:
    """One user as stored (never with the key)."""

    name: str
    admin: bool
    created_at: str
    key_created_at: str

    @property
    def id(self) -> str:
        """What their sessions, turns and memories are stored under."""
        return self.name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Principal:
    """Who a request is: the user whose data it may see (`id`), and how it proved it."""

    id: str
    name: str
    admin: bool
    via: str  # "user-key" (a key from `evo users add`), "api-key" (EVO_API_KEY: the owner), "loopback" (no key at all)

    @property
    def keyed(self) -> bool:
        return self.via != "loopback"


OWNER = Principal(OWNER_ID, OWNER_NAME, True, "loopback")


def session_prefix(user_id: str) -> str:
    """What a user's session ids are stored with: nothing for the owner (their ids stay as they were), `NAME/`
    for everyone else. '/' is never in a session id a client can choose, so two users' ids never collide and
    one user can never name another's session."""
    return "" if user_id == OWNER_ID else f"{user_id}/"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return USER_KEY_PREFIX + secrets.token_urlsafe(USER_KEY_BYTES)


def check_name(name: str) -> str:
    """The name as stored (Turkish-aware lower case), or an EvoError saying what a name may be."""
    value = turkish_lower((name or "").strip())
    if value == OWNER_NAME:
        raise EvoError(f"{OWNER_NAME!r} is the server owner's name (EVO_API_KEY, or no key on loopback).", "Choose another name.")
    if not _NAME.fullmatch(value):
        raise EvoError(f"Invalid user name {name!r}.", "Use 1-32 letters, digits, '_' or '-', starting with a letter or digit (e.g. zerrin).")
    return value


class UserStore:
    """The users of this EVO_HOME's server. Every call is its own short transaction (the server reads it per
    request, so `evo users add/remove` take effect at once in a running server)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            migrate(self._db())
        except sqlite3.DatabaseError as exc:
            raise EvoError(f"The user table in {self.path} cannot be read: {exc}", "Check the file (`evo doctor`).") from exc

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
        return db

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(row["name"], bool(row["admin"]), row["created_at"], row["key_created_at"])

    def add(self, name: str, *, admin: bool = False) -> tuple[User, str]:
        """A new user and their key (the only time the key exists outside the caller)."""
        name = check_name(name)
        key, stamp = new_key(), now_iso()
        try:
            self._db().execute("INSERT INTO users (name, key_hash, admin, created_at, key_created_at) VALUES (?, ?, ?, ?, ?)",
                               (name, hash_key(key), int(admin), stamp, stamp))
        except sqlite3.IntegrityError as exc:
            raise EvoError(f"A user named {name!r} exists already.", f"`evo users key {name}` gives them a new key; `evo users list` lists them.") from exc
        return User(name, admin, stamp, stamp), key

    def get(self, name: str) -> User | None:
        row = self._db().execute("SELECT * FROM users WHERE name = ?", (turkish_lower(name.strip()),)).fetchone()
        return self._user(row) if row else None

    def list(self) -> list[User]:
        return [self._user(r) for r in self._db().execute("SELECT * FROM users ORDER BY name")]

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def _known(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise EvoError(f"No user named {name!r}.", "`evo users list` lists them.")
        return user

    def remove(self, name: str) -> User:
        """Revoke a user's key (their data stays until erased: evo_tr.users.erase)."""
        user = self._known(name)
        self._db().execute("DELETE FROM users WHERE name = ?", (user.name,))
        return user

    def rotate(self, name: str) -> tuple[User, str]:
        """A new key for a user; the old one stops working at once."""
        user = self._known(name)
        key, stamp = new_key(), now_iso()
        self._db().execute("UPDATE users SET key_hash = ?, key_created_at = ? WHERE name = ?", (hash_key(key), stamp, user.name))
        return User(user.name, user.admin, user.created_at, stamp), key

    def resolve(self, key: str) -> User | None:
        """The user this key belongs to, or None."""
        if not key:
            return None
        row = self._db().execute("SELECT * FROM users WHERE key_hash = ?", (hash_key(key),)).fetchone()
        return self._user(row) if row else None

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
