"""Structured application log: JSON lines under $EVO_HOME/logs, rotated by size and pruned by age."""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evo_tr.config import Settings

LOG_NAME = "evo.jsonl"
# LogRecord attributes that are not user-supplied `extra=` fields.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, plus any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_dir(settings: Settings) -> Path:
    return settings.home / "logs"


def prune_old_logs(folder: Path, max_age_days: float) -> int:
    """Rotated files older than the age limit are deleted (the live file never is)."""
    cutoff = time.time() - max_age_days * 86400
    removed = 0
    for path in folder.glob(LOG_NAME + ".*"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class _QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A log line that cannot be written (the disk is full) is dropped, not printed as a traceback over the
    user's terminal: the command itself says what went wrong (found by the disk-full test of issue 27)."""

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        from evo_tr.errors import is_disk_full

        if is_disk_full(sys.exc_info()[1]):
            return
        super().handleError(record)


def setup_logging(settings: Settings, *, verbose: bool = False) -> Path | None:
    """File log at INFO (JSON lines, rotated); stderr only shows errors unless --verbose."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_evo", False):
            root.removeHandler(handler)
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.DEBUG if verbose else logging.ERROR)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stderr._evo = True  # type: ignore[attr-defined]
    root.addHandler(stderr)
    folder = log_dir(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        prune_old_logs(folder, settings.logs.max_age_days)
        handler = _QuietFileHandler(
            folder / LOG_NAME, maxBytes=settings.logs.max_bytes, backupCount=settings.logs.backups, encoding="utf-8", delay=True,
        )
    except OSError:
        return None  # a read-only home must not stop the assistant; stderr still works
    handler.setLevel(logging.INFO)
    handler.setFormatter(JsonLinesFormatter())
    handler._evo = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for noisy in ("httpx", "chromadb", "urllib3", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return folder / LOG_NAME


def tail(settings: Settings, n: int = 20) -> list[dict[str, Any]]:
    """The last n entries of the live log (unparseable lines are shown as text)."""
    path = log_dir(settings) / LOG_NAME
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = deque(fh, maxlen=n)
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"msg": line.rstrip("\n")})
    return out
