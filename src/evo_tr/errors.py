"""User-facing errors: every failure a user can cause carries a hint on how to fix it."""

from __future__ import annotations


class EvoError(Exception):
    """An error the CLI shows as a short message plus a fix, never as a traceback."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ModelNotFound(EvoError):
    """The model is known but its file is not provisioned yet, or the name is unknown."""


class ModelIntegrityError(EvoError):
    """The model file exists but is truncated, corrupt or not the expected bytes."""


class DownloadError(EvoError):
    """A Hub download failed (network, auth, missing file)."""


class RemoteEngineError(EvoError):
    """A remote engine (engine.backend = "openai") is unreachable or refused a request; HTTP callers get 502."""


class StoreBusyError(EvoError):
    """Another process holds a store's write lock longer than we wait."""


def reason(exc: BaseException) -> str:
    """An exception as one line for a notice: the EvoError's message, else its type and text."""
    return exc.message if isinstance(exc, EvoError) else f"{type(exc).__name__}: {exc}"


class DiskFullError(EvoError):
    """The disk under the data dir (or the file being written) has no space left."""


_DISK_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """True if `exc`, or anything it wraps, is the OS or SQLite saying the disk is full. Chroma and SQLite report it
    in their own types (an InternalError or OperationalError with the text), so the text is checked too."""
    import errno

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = (exc.message if isinstance(exc, EvoError) else str(exc)).lower()
        if any(t in text for t in _DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def disk_full_error(path) -> DiskFullError:
    """One message for every write that hit a full disk: which disk, how much is free, that nothing was lost."""
    import shutil
    from pathlib import Path

    where = Path(path)
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
        free_text = f"{free / 1e6:.1f} MB free" if free >= 1e5 else f"{free:,} bytes free"
    except OSError:
        free_text = "free space unknown"
    return DiskFullError(
        f"The disk holding {where} is full ({free_text}), so this could not be written. What was saved before is intact.",
        f"Free some space on that disk (`df -h {probe}` shows it), or move the data dir to a bigger one (set EVO_HOME), "
        "then run the same command again.",
    )
