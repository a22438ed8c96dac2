"""`evo erase`: delete everything the user owns under EVO_HOME (and the config file), leaving none of its bytes behind.

Whole stores go as files, not row by row: deleting chroma.sqlite3, conversations.db, the logs and the chat
history removes every copy of their text (Chroma's own log table and full-text segments included), which
deleting rows cannot promise. Each file is overwritten with zeros before it is unlinked, so its old content is
not left in blocks some later file may be given; on copy-on-write and flash storage, and in filesystem
snapshots, the old blocks may survive anyway (full-disk encryption is the answer there).

Only entries EVO-TR knows (backup.OWNED, and the models with --models) are touched: an EVO_HOME pointed at
the wrong folder loses nothing else, and entries not known are listed as left alone.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

from evo_tr.backup import MODEL_ENTRIES, OWNED, EraseResult
from evo_tr.chroma import WriterLock
from evo_tr.config import Settings, config_file_path

log = logging.getLogger(__name__)

WIPE_CHUNK = 1024 * 1024
SQLITE_SIDES = ("-wal", "-shm", "-journal")  # a database's write-ahead log, its index, a rollback journal
KNOWN = {item.name.split("/")[0] for item in OWNED} | set(MODEL_ENTRIES)


def _size(path: Path) -> tuple[int, int]:
    """(files, bytes) under a path, links not followed."""
    if path.is_symlink() or path.is_file():
        return 1, 0 if path.is_symlink() else path.stat().st_size
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            p = Path(folder) / name
            files += 1
            size += 0 if p.is_symlink() else p.stat().st_size
    return files, size


def erase_plan(settings: Settings, *, models: bool = False, keep_config: bool = False) -> list[tuple[Path, int, int]]:
    """What `evo erase` would delete: (path, files, bytes) for each entry present."""
    home = settings.home
    names = [item.name for item in OWNED] + (list(MODEL_ENTRIES) if models else [])
    names += [f"{item.name}{side}" for item in OWNED if item.kind in ("sqlite", "file") for side in SQLITE_SIDES]
    paths = [home / n for n in names if (home / n).exists() or (home / n).is_symlink()]
    config = config_file_path()
    if not keep_config and config.is_file():
        paths.append(config)
    return [(p, *_size(p)) for p in paths]


def wipe_file(path: Path) -> None:
    """Overwrite a regular file's bytes with zeros and flush them to disk (best effort), before it is unlinked."""
    try:
        size = path.stat().st_size
        with open(path, "r+b", buffering=0) as fh:
            zeros = bytes(min(size, WIPE_CHUNK))
            left = size
            while left > 0:
                left -= fh.write(zeros[: min(left, WIPE_CHUNK)])
            os.fsync(fh.fileno())
    except OSError as exc:
        log.warning("could not overwrite %s before deleting it: %s", path.name, exc)


def remove_path(path: Path, *, wipe: bool = True) -> None:
    """Delete a file or folder tree; links are removed, never followed; regular files are wiped first."""
    if path.is_symlink() or not path.is_dir():
        if wipe and not path.is_symlink() and path.is_file():
            wipe_file(path)
        path.unlink(missing_ok=True)
        return
    for folder, dirs, names in os.walk(path, topdown=False):
        for name in names:
            p = Path(folder) / name
            if wipe and not p.is_symlink() and p.is_file():
                wipe_file(p)
            p.unlink(missing_ok=True)
        for name in dirs:
            d = Path(folder) / name
            d.unlink() if d.is_symlink() else d.rmdir()
    path.rmdir()


def _close_file_logs(folder: Path) -> None:
    """Our own log handlers writing under the folder let go of their file (they reopen it on the next record)."""
    for handler in logging.getLogger().handlers:
        name = getattr(handler, "baseFilename", None)
        if name and Path(name).is_relative_to(folder):
            handler.acquire()
            try:
                handler.close()
            finally:
                handler.release()


def erase_all(settings: Settings, *, models: bool = False, keep_config: bool = False) -> EraseResult:
    """Delete what the user owns (see the module docstring); refused while a night run or a store write is going on."""
    from evo_tr.lifecycle.night import night_lock

    home = settings.home
    result = EraseResult(str(home))
    with ExitStack() as stack:
        if home.is_dir():
            stack.enter_context(night_lock(settings))
            for store in ("memory", "knowledge"):
                if (home / store).is_dir():
                    stack.enter_context(WriterLock(home / store / "writer.lock", settings.memory.lock_timeout_s).hold(bump=False))
        _close_file_logs(home / "logs")
        for path, files, size in erase_plan(settings, models=models, keep_config=keep_config):
            is_model = path.parent == home and path.name in MODEL_ENTRIES
            remove_path(path, wipe=not is_model)  # base models are public bytes: unlinking them is enough
            result.removed.append(path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path))
            result.files += files
            result.bytes += size
    if not models:
        result.kept += [n for n in MODEL_ENTRIES if (home / n).exists()]
    config = config_file_path()
    if keep_config and config.is_file():
        result.kept.append(str(config))
    if home.is_dir():
        result.left = sorted(p.name for p in home.iterdir() if p.name not in KNOWN)
    if "knowledge" in result.removed:
        result.notices.append("The shipped Turkish knowledge pack is loaded again on first use (a few seconds).")
    if result.left:
        result.notices.append(f"Left alone (not known to be EVO-TR's): {', '.join(result.left)}.")
    if home.is_dir():
        (home / "logs").mkdir(exist_ok=True)  # the file log reopens there for the line below (counts only, no content)
    log.info("erase: %s entries removed (%s files, %s bytes)", len(result.removed), result.files, result.bytes)
    return result
