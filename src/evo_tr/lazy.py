"""A resource opened on first use, reopened after a failure but not more often than a retry interval.

The memory store and the knowledge store are both reached this way by the chat: a store that is down or
locked costs the turn its context, never its answer, and is tried again after chat.memory_retry_s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from evo_tr.errors import EvoError, reason

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unavailable(EvoError):
    """The resource could not be opened (or is waiting out its retry interval after a failure)."""


class LazyResource(Generic[T]):
    what = "resource"
    unavailable: type[Unavailable] = Unavailable

    def __init__(self, open_fn: Callable[[], T | None], retry_s: float) -> None:
        self._open = open_fn
        self.retry_s = retry_s
        self.lock = threading.RLock()
        self.value: T | None = None
        self.error: str | None = None
        self._retry_at = 0.0

    def get(self) -> T:
        """The open resource, or `unavailable` saying why not (without retrying more often than configured)."""
        with self.lock:
            if self.value is not None:
                return self.value
            if time.monotonic() < self._retry_at:
                raise self.unavailable(f"{self.what} unavailable ({self.error})")
            try:
                value = self._open()
            except Exception as exc:
                self.failed(exc)
                raise self.unavailable(f"{self.what} unavailable ({self.error})") from exc
            if value is None:
                raise EvoError(f"{self.what} is disabled in the settings")
            self.value, self.error = value, None
            return value

    def failed(self, exc: BaseException) -> None:
        """Forget the connection; the next attempt reopens it after the retry interval."""
        with self.lock:
            self.value = None
            self.error = reason(exc)
            self._retry_at = time.monotonic() + self.retry_s
        log.warning("%s failed: %s", self.what, self.error)
