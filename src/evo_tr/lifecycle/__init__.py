"""Lifecycle: the conversation store (every turn in SQLite) that chat writes by day and the night reads."""

from evo_tr.lifecycle.conversations import ConversationStore, Feedback, SessionInfo, TurnRecord

__all__ = ["ConversationStore", "Feedback", "SessionInfo", "TurnRecord"]
