"""One user's data erased: their sessions, turns, feedback, the proposals made from them, queued memory writes
and memories; then the files are scrubbed so the deleted rows leave no bytes behind (evo_tr.backup.scrub:
secure_delete, VACUUM, WAL truncated; Chroma's own write log purged). Other users' data is not touched."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from evo_tr.backup.scrub import scrub_chroma, scrub_sqlite
from evo_tr.config import Settings
from evo_tr.errors import reason

log = logging.getLogger(__name__)


@dataclass
class ErasedUser:
    """What erasing one user's data removed, and which files were scrubbed afterwards."""

    user: str
    sessions: int = 0
    turns: int = 0
    feedback: int = 0
    proposals: int = 0
    preference_pairs: int = 0
    queued_memory_writes: int = 0
    memories: int = 0
    scrubbed: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase_user_data(settings: Settings, user_id: str, conversations, memory=None,
                    memory_lock: AbstractContextManager | None = None) -> ErasedUser:
    """Delete everything `user_id` stored (a ConversationStore, and a MemoryStore when memory is on), then scrub.

    `memory_lock`: held around the memory delete and its scrub (the server's memory link lock, so no request
    of this process reads the store while its file is rebuilt)."""
    out = ErasedUser(user_id)
    for key, value in conversations.erase_user(user_id).items():
        setattr(out, key, value)
    if memory is not None:
        with memory_lock or nullcontext():
            out.memories = memory.clear_all(user=user_id)
            if settings.memory.backend == "embedded":
                try:
                    scrub_chroma(memory.path)
                    out.scrubbed.append(str(memory.path))
                except Exception as exc:  # the rows are gone; only their leftover bytes wait for the next scrub
                    log.warning("could not scrub the memory store after erasing %r: %s", user_id, exc)
                    out.notices.append(f"memory store not scrubbed: {reason(exc)}")
            else:
                out.notices.append("memory is on a Chroma server: its files are scrubbed by that server's operator, not here")
    try:
        scrub_sqlite(conversations.path)
        out.scrubbed.append(str(conversations.path))
    except Exception as exc:
        log.warning("could not scrub %s after erasing %r: %s", conversations.path, user_id, exc)
        out.notices.append(f"conversation store not scrubbed: {reason(exc)}")
    log.info("erased user %r: %s", user_id, {k: v for k, v in out.as_dict().items() if isinstance(v, int)}, extra={"event": "user_erased"})
    return out
