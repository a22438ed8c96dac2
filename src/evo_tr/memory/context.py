"""Short-term memory: the recent messages of one conversation, bounded by count and by tokens."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from evo_tr.engine.base import Message, Role

# ChatML wraps every message in <|im_start|>role\n … <|im_end|>\n: about four tokens of framing.
MESSAGE_OVERHEAD_TOKENS = 4


class ContextBuffer:
    """Sliding window over the last messages; token counts come from the active model's tokenizer."""

    def __init__(self, max_messages: int, max_tokens: int, count_tokens: Callable[[str], int]) -> None:
        if max_messages < 2 or max_tokens < 1:
            raise ValueError("ContextBuffer needs room for at least one exchange.")
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self._count = count_tokens
        self._items: deque[tuple[Message, int]] = deque()
        self.dropped = 0  # messages slid out of the window so far

    def add(self, role: Role, content: str) -> None:
        self._items.append((Message(role, content), self._count(content) + MESSAGE_OVERHEAD_TOKENS))
        self._slide()

    def extend(self, messages: Iterable[Message]) -> None:
        for m in messages:
            self.add(m.role, m.content)

    def _slide(self) -> None:
        while self._items and (len(self._items) > self.max_messages or self.tokens > self.max_tokens):
            self._items.popleft()
            self.dropped += 1
        # Never start the window with an assistant reply whose question slid out.
        while self._items and self._items[0][0].role == "assistant":
            self._items.popleft()
            self.dropped += 1

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self._items)

    @property
    def messages(self) -> list[Message]:
        return [m for m, _ in self._items]

    def to_chat(self) -> list[dict[str, str]]:
        """OpenAI/HF chat-message format."""
        return [m.as_dict() for m in self.messages]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
