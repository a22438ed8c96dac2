"""`evo backup FILE` / `evo restore FILE`: one tar archive (gzip when the name ends in .gz/.tgz) of what the user owns.

Layout: `manifest.json` first (format, version, creation time, evo_tr version, sha256 and size of every
member, the base models that were present), then `home/<path relative to EVO_HOME>` for the data and
`config/evo.toml` for the config file in force. Paths are relative, so an archive restores into any
EVO_HOME on any machine.

Snapshots are consistent: every SQLite file is copied with the sqlite3 backup API (never raw bytes of a
live WAL database), and a Chroma store's folder is copied while its cross-process writer lock is held,
so no write lands mid-copy. Restore streams every member into a staging folder beside EVO_HOME and checks
its size and sha256 against the manifest; only when every member matched does anything move into
EVO_HOME. Checksums catch damage and truncation, not a deliberate forgery (a forger can rewrite the
manifest too): compare the archive's own sha256, printed by `evo backup`, for that.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import tomllib
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.request import pathname2url

from evo_tr import __version__
from evo_tr.backup import (
    CONFIG_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    HOME_PREFIX,
    MANIFEST_NAME,
    OWNED,
    SKIP_NAMES,
    SKIP_PREFIXES,
    SKIP_SUFFIXES,
    BackupResult,
    ManifestFile,
    ModelRecord,
    Owned,
    RestoreResult,
)
from evo_tr.chroma import WriterLock
from evo_tr.config import Settings, config_file_path
from evo_tr.errors import EvoError

Progress = Callable[[str, int, int], None]
"""Called with (what is being done, bytes done, bytes in all)."""

CHUNK = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
LOCK_WAIT_S = 60.0  # a backup waits this long for a store write in progress (a night import may be writing)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_BROKEN = (tarfile.TarError, EOFError, zlib.error, OSError)


def _noop(_what: str, _done: int, _total: int) -> None:
    pass


# -- snapshot ------------------------------------------------------------------------------------------------
def _skipped(name: str) -> bool:
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES) or name.startswith(SKIP_PREFIXES)


def _files(root: Path) -> Iterator[Path]:
    """Regular files under root (links to files followed, links to folders not), in name order, scratch skipped."""
    if root.is_file():
        yield root
        return
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d) and not (Path(folder) / d).is_symlink())
        for name in sorted(names):
            path = Path(folder) / name
            if not _skipped(name) and path.is_file():
                yield path


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy through the sqlite3 backup API (WAL content included), as a self-contained file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(src, timeout=LOCK_WAIT_S)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()


def _copy(src: Path, dst: Path) -> None:
    if is_sqlite(src):
        copy_sqlite(src, dst)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _documents(folder: Path) -> int:
    """How many user documents a knowledge folder holds (0 when only the shipped pack is there)."""
    return _count(folder / "documents.db", "SELECT COUNT(*) FROM documents") or 0


class _Snapshot:
    def __init__(self, settings: Settings, staging: Path, progress: Progress) -> None:
        self.settings, self.home, self.staging, self.progress = settings, settings.home, staging, progress
        self.notices: list[str] = []
        self.knowledge = "none"
        self.done = 0
        self.total = 0

    def plan(self) -> list[Owned]:
        items = []
        for item in OWNED:
            src = self.home / item.name
            if not item.backup or not src.exists():
                continue
            if item.kind == "store" and self.settings.memory.backend == "http":
                self.notices.append(f"memory.backend is 'http': the {item.name} store lives on the Chroma server and is not "
                                    "in this backup (`evo memory export` writes the memories to a file).")
                continue
            if item.name == "knowledge":
                if not _documents(src):
                    self.knowledge = "pack only (rebuilt from the package)"
                    continue
                self.knowledge = "documents"
            items.append(item)
        self.total = sum(p.stat().st_size for item in items for p in _files(self.home / item.name))
        return items

    def take(self, item: Owned) -> None:
        src = self.home / item.name
        if item.kind == "store":
            # The store's folder holds chroma/ and the writer lock ChromaCollection takes (path.parent / writer.lock).
            with WriterLock(src / "writer.lock", max(LOCK_WAIT_S, self.settings.memory.lock_timeout_s)).hold(bump=False):
                self._copy_tree(src)
        else:
            self._copy_tree(src)

    def _copy_tree(self, src: Path) -> None:
        for path in _files(src):
            rel = path.relative_to(self.home)
            _copy(path, self.staging / HOME_PREFIX / rel)
            self.done += path.stat().st_size
            self.progress(f"snapshot {rel.parts[0]}", self.done, self.total)


def _models(settings: Settings) -> list[ModelRecord]:
    """Base models present now (never archived): name, expected sha256, size, where they come from."""
    from evo_tr.models import ModelStore

    try:
        store = ModelStore(settings.models_dir)
        specs = store.registry.all()
    except EvoError:
        return []
    out = []
    for spec in specs:
        status = store.status(spec)
        if status.present:
            out.append(ModelRecord(spec.name, store.expected_sha256(spec), status.size, spec.source.kind))
    return out


def _sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


class _Reader:
    """A file read by tarfile, reporting bytes as they go."""

    def __init__(self, fh, on_read: Callable[[int], None]) -> None:
        self.fh, self.on_read = fh, on_read

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.on_read(len(data))
        return data


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def create_backup(settings: Settings, archive: Path, *, gzip: bool | None = None, force: bool = False,
                  progress: Progress = _noop) -> BackupResult:
    """Snapshot everything the user owns into one archive (see the module docstring); models are only listed."""
    archive = Path(archive).expanduser().absolute()
    if archive.is_dir():
        raise EvoError(f"{archive} is a folder.", "Give the archive's file name, e.g. evo backup evo-backup.tar.gz")
    if archive.exists() and not force:
        raise EvoError(f"{archive} already exists.", "Choose another name, or pass --force to replace it.")
    if archive.resolve().is_relative_to(settings.home.resolve()):
        raise EvoError(f"{archive} is inside EVO_HOME ({settings.home}).", "Write the backup somewhere else (`evo erase` would delete it).")
    archive.parent.mkdir(parents=True, exist_ok=True)
    compress = archive.name.endswith((".gz", ".tgz")) if gzip is None else gzip
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=archive.parent))
    tmp = archive.with_name(archive.name + ".partial")
    try:
        snap = _Snapshot(settings, staging, progress)
        for item in snap.plan():
            snap.take(item)
        config = config_file_path()
        if config.is_file():
            (staging / CONFIG_MEMBER).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config, staging / CONFIG_MEMBER)
        members = sorted(str(p.relative_to(staging).as_posix()) for p in _files(staging))
        sizes = {m: (staging / m).stat().st_size for m in members}
        total = sum(sizes.values())
        done = 0

        def advance(n: int, what: str) -> None:
            nonlocal done
            done += n
            progress(what, done, 2 * total)

        files = [ManifestFile(m, _sha256(staging / m, lambda n: advance(n, "checksums")), sizes[m]) for m in members]
        models = _models(settings)
        counts = home_counts(staging / HOME_PREFIX, settings)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "evo_tr_version": __version__,
            "source_home": str(settings.home),
            "config_file": str(config) if config.is_file() else None,
            "knowledge": snap.knowledge,
            "counts": counts,
            "files": [f.__dict__ for f in files],
            "models": [m.__dict__ for m in models],
            "excluded": ["models (re-provisioned by `evo models pull`)", "torch", "logs", "bench", "eval", "datasets"],
        }
        data = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the archive holds private data
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as tar:
            now = time.time()
            tar.addfile(_tarinfo(MANIFEST_NAME, len(data), now), io.BytesIO(data))
            for f in files:
                with open(staging / f.path, "rb") as fh:
                    tar.addfile(_tarinfo(f.path, f.size, now), _Reader(fh, lambda n: advance(n, "writing archive")))
        os.replace(tmp, archive)
    except OSError as exc:
        raise EvoError(f"Cannot write the backup {archive}: {exc}", "Check that the folder is writable and has room.") from exc
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(str(archive), archive.stat().st_size, _sha256(archive), len(files), total, counts, models,
                        snap.knowledge, snap.notices)


# -- counts ----------------------------------------------------------------------------------------------------
def _count(db_path: Path, sql: str, params: tuple = ()) -> int | None:
    if not db_path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{pathname2url(str(db_path))}?mode=ro", uri=True)
        try:
            return int(db.execute(sql, params).fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def home_counts(home: Path, settings: Settings) -> dict[str, int | None]:
    """What a home (or a backup's staging copy of one) holds, for people and `--json` (None: not there)."""
    conv = home / "conversations.db"
    return {
        "memories": _count(home / "memory" / "chroma" / "chroma.sqlite3",
                           "SELECT COUNT(*) FROM embeddings e JOIN segments s ON s.id = e.segment_id "
                           "JOIN collections c ON c.id = s.collection WHERE c.name = ?", (settings.memory.collection,)),
        "sessions": _count(conv, "SELECT COUNT(*) FROM sessions"),
        "turns": _count(conv, "SELECT COUNT(*) FROM turns"),
        "feedback": _count(conv, "SELECT COUNT(*) FROM feedback"),
        "proposals": _count(conv, "SELECT COUNT(*) FROM proposals"),
        "queued_memory_writes": _count(conv, "SELECT COUNT(*) FROM memory_queue"),
        "knowledge_documents": _count(home / "knowledge" / "documents.db", "SELECT COUNT(*) FROM documents"),
        "adapter_versions": sum(1 for _ in home.glob("adapters/*/v*/metadata.json")),
        "reports": sum(1 for _ in home.glob("reports/*/report.json")),
    }


# -- restore ---------------------------------------------------------------------------------------------------
def safe_member(name: str) -> str:
    """A member name that stays inside the restore: relative, no `..`, no empty or odd parts, a known prefix."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or "\x00" in name or path.is_absolute() or name.startswith("/")
            or any(part in ("..", ".", "") for part in name.split("/")) or (len(name) > 1 and name[1] == ":")):
        raise EvoError(f"The archive has an unsafe member {name!r} (absolute or climbing out with '..').",
                       "Refused: this is not an archive written by `evo backup`. Nothing was written.")
    if name != MANIFEST_NAME and not (name.startswith(HOME_PREFIX) or name == CONFIG_MEMBER):
        raise EvoError(f"The archive has a member {name!r} outside home/ and config/.",
                       "Refused: this is not an archive written by `evo backup`. Nothing was written.")
    return name


def _broken(archive: Path, member: str | None, exc: BaseException) -> EvoError:
    where = f" at member {member!r}" if member else ""
    return EvoError(f"The backup {archive} is truncated or damaged{where}: {exc}",
                    "Nothing was written. Use an intact copy of the archive (compare its sha256 with the one `evo backup` printed).")


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> tuple[dict[str, Any], tarfile.TarInfo]:
    first = tar.next()
    if first is None or first.name != MANIFEST_NAME or not first.isfile() or first.size > MAX_MANIFEST_BYTES:
        raise EvoError(f"{archive} is not an EVO-TR backup (it does not start with {MANIFEST_NAME}).",
                       "Give a file written by `evo backup`.")
    try:
        manifest = json.loads(tar.extractfile(first).read())
    except _BROKEN as exc:
        raise _broken(archive, MANIFEST_NAME, exc) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvoError(f"The manifest of {archive} is not valid JSON: {exc}", "The archive is damaged; use an intact copy.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise EvoError(f"{archive} is not an EVO-TR backup (its manifest has format {manifest.get('format') if isinstance(manifest, dict) else None!r}).",
                       "Give a file written by `evo backup`.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EvoError(f"{archive} has backup format version {version!r}; this EVO-TR ({__version__}) reads up to {FORMAT_VERSION}.",
                       "Upgrade EVO-TR (pip install -U evo-tr), then restore.")
    return manifest, first


def _expected(manifest: dict[str, Any]) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for row in manifest["files"]:
        try:
            name, sha, size = row["path"], row["sha256"], row["size"]
        except (TypeError, KeyError):
            raise EvoError(f"The manifest has a malformed file entry {row!r}.", "The archive is damaged; use an intact copy.") from None
        safe_member(name)
        if name == MANIFEST_NAME or name in out or not isinstance(size, int) or size < 0 or not isinstance(sha, str):
            raise EvoError(f"The manifest has a bad or repeated entry for {name!r}.", "The archive is damaged; use an intact copy.")
        out[name] = (sha, size)
    return out


def _top_entries(expected: dict[str, tuple[str, int]]) -> set[str]:
    """Entries of EVO_HOME the archive brings (models/registry.json counts as a file, not the models folder)."""
    tops = set()
    for name in expected:
        if name.startswith(HOME_PREFIX):
            parts = name[len(HOME_PREFIX):].split("/")
            tops.add("/".join(parts[:2]) if parts[0] == "models" else parts[0])
    return tops


def _conflicts(home: Path, config: Path, staged_config: bytes | None) -> list[Path]:
    """What a restore would replace: the user-data entries of the home, and a different config file."""
    found = [home / item.name for item in OWNED if item.backup and (home / item.name).exists()]
    if config.exists() and (staged_config is None or config.read_bytes() != staged_config):
        found.append(config)
    return found


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem (a config file outside the data dir)
        shutil.move(str(src), str(dst))


def _write(out, chunk: bytes, staging: Path) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise EvoError(f"Cannot unpack into {staging}: {exc}", "Make room or fix permissions beside EVO_HOME; nothing was restored.") from exc


def _extract(tar: tarfile.TarFile, archive: Path, expected: dict[str, tuple[str, int]], staging: Path | None,
             progress: Progress, first: tarfile.TarInfo) -> None:
    """Stream every member, check its size and sha256; write it under staging (None: only verify)."""
    total = sum(size for _, size in expected.values())
    done = 0
    seen: set[str] = set()
    name: str | None = None
    try:
        for member in tar:
            if member is first:  # the manifest, read already
                continue
            name = member.name
            safe_member(name)
            if not member.isfile():
                raise EvoError(f"The archive's member {name!r} is not a plain file (a link, device or folder).",
                               "Refused: a backup holds plain files only. Nothing was written.")
            if name not in expected or name in seen:
                raise EvoError(f"The archive's member {name!r} is {'repeated' if name in seen else 'not in its manifest'}.",
                               "The archive was changed after `evo backup` wrote it; use an intact copy. Nothing was written.")
            sha, size = expected[name]
            if member.size != size:
                raise EvoError(f"The archive's member {name!r} has {member.size} bytes; the manifest says {size}.",
                               "The archive was changed or damaged; use an intact copy. Nothing was written.")
            digest = hashlib.sha256()
            source = tar.extractfile(member)
            out = None
            if staging is not None:
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                out = open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
            try:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    if out is not None:
                        _write(out, chunk, staging)
                    done += len(chunk)
                    progress("verifying" if staging is None else "verifying and unpacking", done, total)
            finally:
                if out is not None:
                    out.close()
            if digest.hexdigest() != sha:
                raise EvoError(f"The archive's member {name!r} does not match its sha256 in the manifest.",
                               "The archive was changed or damaged; use an intact copy. Nothing was written.")
            seen.add(name)
            name = None
    except EvoError:
        raise
    except _BROKEN as exc:
        raise _broken(archive, name, exc) from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise EvoError(f"The backup {archive} is truncated or damaged: {len(missing)} member(s) missing, first {missing[0]!r}.",
                       "Nothing was written. Use an intact copy of the archive.")


def restore_backup(settings: Settings, archive: Path, *, force: bool = False, check_only: bool = False,
                   progress: Progress = _noop) -> RestoreResult:
    """Verify the whole archive, then move its data into EVO_HOME (with --force the current data is moved aside).

    check_only: verify every member and write nothing (not even the staging folder).
    """
    archive = Path(archive).expanduser().absolute()
    if not archive.is_file():
        raise EvoError(f"No backup file {archive}.", "Give the path of a file written by `evo backup`.")
    home = settings.home.expanduser().absolute()
    config = config_file_path().expanduser().absolute()
    staging: Path | None = None
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            manifest, first = _read_manifest(tar, archive)
            expected = _expected(manifest)
            total = sum(size for _, size in expected.values())
            if not check_only:
                _refuse_conflicts(home, [p for p in _conflicts(home, config, None) if p != config], force)
                home.parent.mkdir(parents=True, exist_ok=True)
                free = shutil.disk_usage(home.parent).free
                if total > free:
                    raise EvoError(f"The backup needs {total:,} bytes; {home.parent} has {free:,} free.", "Make room, then restore.")
                staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.restore-", dir=home.parent))
            _extract(tar, archive, expected, staging, progress, first)
        result = RestoreResult(str(archive), str(home), len(expected), total, str(manifest.get("created_at", "")),
                               str(manifest.get("evo_tr_version", "")), counts=dict(manifest.get("counts") or {}))
        if staging is not None:
            try:
                _install(settings, staging, home, config, force, result)
            except OSError as exc:
                where = f" The previous data is in {result.moved_aside}." if result.moved_aside else ""
                raise EvoError(f"The restore stopped while moving files into {home}: {exc}.{where}",
                               "Fix the permissions or room, move the partial data away, and restore again.") from exc
    except tarfile.ReadError as exc:
        raise EvoError(f"{archive} is not a readable tar archive: {exc}", "Give a file written by `evo backup` (tar or tar.gz).") from exc
    except EvoError:
        raise
    except _BROKEN as exc:
        raise _broken(archive, None, exc) from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    result.models_to_pull = _missing_models(settings, manifest)
    return result


def _refuse_conflicts(home: Path, conflicts: list[Path], force: bool) -> None:
    if conflicts and not force:
        names = ", ".join(str(p.relative_to(home)) if p.is_relative_to(home) else str(p) for p in conflicts)
        raise EvoError(f"EVO_HOME {home} already holds data ({names}); a restore would overwrite it. Nothing was written.",
                       "Restore into an empty EVO_HOME (set EVO_HOME), or pass --force: the current data is moved aside "
                       f"to {home.name}.before-restore-…/ beside it, nothing is deleted.")


def _install(settings: Settings, staging: Path, home: Path, config: Path, force: bool, result: RestoreResult) -> None:
    """Everything checked out: move the current data aside (--force), then the staged data into place."""
    staged_config = (staging / CONFIG_MEMBER).read_bytes() if (staging / CONFIG_MEMBER).is_file() else None
    conflicts = _conflicts(home, config, staged_config)
    _refuse_conflicts(home, conflicts, force)
    if conflicts:
        aside = home.parent / f"{home.name}.before-restore-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        while aside.exists():
            aside = aside.with_name(aside.name + "-1")
        result.moved_aside = str(aside)
        for path in conflicts:
            _move(path, aside / CONFIG_MEMBER if path == config else aside / path.relative_to(home))
    staged_home = staging / HOME_PREFIX
    if staged_home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        for entry in sorted(staged_home.iterdir()):
            if entry.name == "models":  # only the user's registry travels; pulled models stay where they are
                for f in sorted(entry.iterdir()):
                    _move(f, home / "models" / f.name)
            else:
                _move(entry, home / entry.name)
    if staged_config is not None:
        if not config.exists():
            _move(staging / CONFIG_MEMBER, config)
        result.config_file = str(config)
        try:
            restored_home = tomllib.loads(staged_config.decode("utf-8")).get("home")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            restored_home = None
        if restored_home and Path(str(restored_home)).expanduser().absolute() != home:
            result.notices.append(f"The restored config sets home = {restored_home!r}, not {str(home)!r} where this restore went: "
                                  f"edit {config} (or set EVO_HOME) so EVO-TR finds its data.")
    result.counts = home_counts(home, settings)


def _missing_models(settings: Settings, manifest: dict[str, Any]) -> list[ModelRecord]:
    """Models the backup's machine had that this one lacks (or has with other bytes): what to `evo models pull`."""
    here = _models(settings)
    present = {(m.name, m.sha256) for m in here}
    names = {m.name for m in here}
    out = []
    for row in manifest.get("models") or []:
        try:
            record = ModelRecord(str(row["name"]), row.get("sha256"), row.get("size"), str(row.get("source", "")))
        except (TypeError, KeyError):
            continue
        if record.name not in names or (record.sha256 and (record.name, record.sha256) not in present):
            out.append(record)
    return out
