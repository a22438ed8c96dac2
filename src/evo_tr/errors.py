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


class StoreBusyError(EvoError):
    """Another process holds a store's write lock longer than we wait."""


def reason(exc: BaseException) -> str:
    """An exception as one line for a notice: the EvoError's message, else its type and text."""
    return exc.message if isinstance(exc, EvoError) else f"{type(exc).__name__}: {exc}"
