"""Backup, restore and erase of everything the user owns under $EVO_HOME, plus scrubbing of stores after deletes.

What belongs to the user is listed once here (`OWNED`): archive.py snapshots it, erase.py deletes it.
Downloaded base models are not the user's data: a backup records which ones were present (name, sha256)
so a restore can say what to `evo models pull`; erase keeps them unless asked (`--models`).

  archive.py  `evo backup FILE` / `evo restore FILE`: one tar (optionally gzip) with a manifest.json
  erase.py    `evo erase`: delete it all, leaving none of its bytes in the files under $EVO_HOME
  scrub.py    scrub_sqlite / scrub_chroma: after deleting rows, make the deleted text leave the files
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "evo-tr-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
HOME_PREFIX = "home/"  # archive members under this prefix are paths relative to EVO_HOME
CONFIG_MEMBER = "config/evo.toml"  # the config file in force (evo_tr.config.config_file_path()) when backed up


@dataclass(frozen=True)
class Owned:
    """One entry of EVO_HOME that holds the user's data: its name relative to EVO_HOME and how it is copied."""

    name: str
    kind: str  # "store" (Chroma folder under its writer lock), "sqlite", "tree" (a folder of files), "file"
    what: str
    backup: bool = True  # False: erased but not archived (derived or operational data)


# In the order a backup takes them. Every SQLite file met inside a store or tree is copied with the sqlite3
# backup API (a consistent snapshot, also of a live WAL database), never as raw bytes.
OWNED: tuple[Owned, ...] = (
    Owned("memory", "store", "long-term memories (Chroma, under memory/writer.lock)"),
    Owned("knowledge", "store", "your documents (the shipped pack is rebuilt from the package when there are none)"),
    Owned("conversations.db", "sqlite", "sessions, turns, feedback, proposals, night state, the memory write queue"),
    Owned("reports", "tree", "night reports"),
    Owned("adapters", "tree", "adapters trained here: version folders, active pointers, history"),
    Owned("router", "tree", "routers trained here"),
    Owned("training", "tree", "training data imported or prepared here"),
    Owned("chat_history.txt", "file", "the chat prompt's input history"),
    Owned("models/registry.json", "file", "models you registered (`evo models add`, hf: references)"),
    Owned("logs", "tree", "the application log (may quote your messages)", backup=False),
    Owned("night.lock", "file", "the night run's lock file", backup=False),
    Owned("bench", "tree", "`evo bench` scratch stores", backup=False),
    Owned("eval", "tree", "evaluation caches", backup=False),
    Owned("datasets", "tree", "datasets downloaded by `evo data import`", backup=False),
)
# Re-provisioned by `evo models pull` (or derived from those files): never archived, erased only with --models.
MODEL_ENTRIES: tuple[str, ...] = ("models", "torch")
# Inside a store or tree: lock and change-counter files, SQLite side files, unfinished writes, training scratch.
SKIP_NAMES = frozenset({"writer.lock", "generation"})
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".partial", ".tmp")
SKIP_PREFIXES = (".train-", "generation.")


@dataclass(frozen=True)
class ManifestFile:
    path: str  # archive member name
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelRecord:
    """A base model present when the backup was taken (not archived: restore says to pull it)."""

    name: str
    sha256: str | None
    size: int | None
    source: str


@dataclass
class BackupResult:
    archive: str
    bytes: int
    sha256: str
    files: int
    data_bytes: int
    counts: dict[str, int | None] = field(default_factory=dict)
    models: list[ModelRecord] = field(default_factory=list)
    knowledge: str = ""  # "documents" (archived) or "pack only (rebuilt from the package)"
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RestoreResult:
    archive: str
    home: str
    files: int
    bytes: int
    created_at: str
    evo_tr_version: str
    config_file: str | None = None
    moved_aside: str | None = None  # where the previous data went with --force
    models_to_pull: list[ModelRecord] = field(default_factory=list)
    counts: dict[str, int | None] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EraseResult:
    home: str
    removed: list[str] = field(default_factory=list)  # entries (relative to home; the config file as its path)
    files: int = 0
    bytes: int = 0
    kept: list[str] = field(default_factory=list)  # models (without --models), the config with --keep-config
    left: list[str] = field(default_factory=list)  # entries of EVO_HOME not known to be EVO-TR's: left untouched
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScrubResult:
    path: str
    queue_rows_purged: int = 0  # Chroma only: log rows of ids deleted since
    fts_optimized: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    wal_truncated: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
