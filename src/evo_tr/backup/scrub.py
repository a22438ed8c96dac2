"""Make deleted rows leave the files: SQLite keeps deleted text in free pages, WAL frames and FTS segments,
and Chroma also keeps every write in its own log table (`embeddings_queue`) until its vector index persists.

Call these after deleting through the normal API (a session through ConversationStore, memories through
MemoryStore.delete), e.g. when one user's data is erased over the HTTP API:

    store.delete(ids)                  # through Chroma: rows, metadata, full-text index entries
    scrub_chroma(store.path)           # then its log rows, FTS segments and free pages
    scrub_sqlite(settings.conversations_db)

What stays (by design, see the README's "Backup and erase"): the vector index's binary files
(`<segment>/data_level0.bin`) may keep a deleted memory's embedding (numbers, never its text) in a slot
marked deleted until a new vector reuses it; and blocks the filesystem freed are not overwritten.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import nullcontext
from pathlib import Path

from evo_tr.backup import ScrubResult
from evo_tr.chroma import WriterLock

log = logging.getLogger(__name__)

CHROMA_DB = "chroma.sqlite3"
CHROMA_DELETE_OP = 3  # chromadb.db.mixins.embeddings_queue._operation_codes[Operation.DELETE]
SQLITE_TIMEOUT_S = 30.0


def _size(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        side = path.with_name(path.name + suffix)
        if side.is_file():
            total += side.stat().st_size
    return total


def _optimize_fts(db: sqlite3.Connection) -> list[str]:
    """Merge every full-text index into one segment, which drops the entries of deleted rows."""
    done = []
    rows = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
    ).fetchall()
    for name, sql in rows:
        module = sql.lower().split(" using ", 1)[-1].lstrip()
        if not module.startswith(("fts5", "fts4", "fts3")):
            continue
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            db.execute(f"INSERT INTO {quoted}({quoted}) VALUES('optimize')")
            done.append(name)
        except sqlite3.OperationalError as exc:  # e.g. this Python's SQLite lacks the module: VACUUM still runs
            log.warning("could not optimize full-text table %s in %s: %s", name, db, exc)
    return done


def scrub_sqlite(path: Path | str, *, timeout_s: float = SQLITE_TIMEOUT_S) -> ScrubResult:
    """secure_delete on, full-text indexes optimized, VACUUM, then wal_checkpoint(TRUNCATE).

    VACUUM rebuilds the file from its live rows only (no free page, no stale FTS segment survives), and the
    checkpoint empties the write-ahead log, which held the old pages. `wal_truncated` is False when another
    connection was reading and the log could not be emptied (run it again once that reader is done).
    """
    path = Path(path)
    result = ScrubResult(str(path), bytes_before=_size(path))
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        db.execute("PRAGMA secure_delete=ON")
        result.fts_optimized = _optimize_fts(db)
        db.execute("VACUUM")
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        result.wal_truncated = busy == 0
    finally:
        db.close()
    result.bytes_after = _size(path)
    return result


def _purge_chroma_log(db: sqlite3.Connection) -> int:
    """Chroma's log rows that wrote ids deleted later; the delete rows stay (they carry only the id)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embeddings_queue'").fetchone():
        return 0
    # Rows of live ids stay: a vector index that has not persisted yet replays them on the next open. Rows
    # before an id's last delete are never needed: replayed or not, that delete removes what they wrote.
    db.execute(
        """
        WITH last_delete AS (
            SELECT topic, id, MAX(seq_id) AS seq FROM embeddings_queue WHERE operation = ? GROUP BY topic, id
        )
        DELETE FROM embeddings_queue
        WHERE operation != ? AND EXISTS (
            SELECT 1 FROM last_delete d
            WHERE d.topic = embeddings_queue.topic AND d.id = embeddings_queue.id AND embeddings_queue.seq_id < d.seq
        )
        """,
        (CHROMA_DELETE_OP, CHROMA_DELETE_OP),
    )
    return int(db.execute("SELECT changes()").fetchone()[0])  # rowcount is -1 for a statement that starts with WITH


def scrub_chroma(path: Path | str, *, lock: bool = True, timeout_s: float | None = SQLITE_TIMEOUT_S) -> ScrubResult:
    """After rows were deleted through Chroma: purge their log rows, then scrub_sqlite its chroma.sqlite3.

    `path` is the store's folder (MemoryStore.path: it holds chroma.sqlite3) or that file. Runs under the
    store's cross-process writer lock (`<folder's parent>/writer.lock`, as ChromaCollection builds it) so no
    write lands meanwhile; pass lock=False when the caller already holds it (flock does not nest).
    """
    path = Path(path)
    db_path = path if path.name == CHROMA_DB else path / CHROMA_DB
    if not db_path.is_file():
        return ScrubResult(str(db_path))
    writer = WriterLock(db_path.parent.parent / "writer.lock", timeout_s)
    with writer.hold(bump=False) if lock else nullcontext():
        db = sqlite3.connect(db_path, timeout=timeout_s or SQLITE_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("PRAGMA secure_delete=ON")
            purged = _purge_chroma_log(db)
        finally:
            db.close()
        result = scrub_sqlite(db_path, timeout_s=timeout_s or SQLITE_TIMEOUT_S)
    result.queue_rows_purged = purged
    log.info("scrubbed %s: %s log rows purged, %s → %s bytes", db_path, purged, result.bytes_before, result.bytes_after)
    return result
