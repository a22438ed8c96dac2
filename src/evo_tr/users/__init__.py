"""Several users of one `evo serve`, kept apart: each has a key of their own, and sees only their own sessions,
turns, feedback and memories (the server resolves every request to one user; the stores filter by it).

  store.py     the users table (conversations.db, migration 3): names, admin flags, SHA-256 of the keys
  erase.py     one user's data erased (DELETE /v1/evo/me, `evo users remove`), then scrubbed from the files
  commands.py  `evo users add|list|remove|key`

The owner (config.OWNER_ID, shown as "owner") is the one user of a server without user keys, of EVO_API_KEY
and of every CLI command; everything stored before users existed is theirs.
"""

from evo_tr.users.store import OWNER, Principal, User, UserStore, session_prefix

__all__ = ["OWNER", "Principal", "User", "UserStore", "session_prefix"]
