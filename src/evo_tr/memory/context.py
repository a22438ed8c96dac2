"""Short-term memory: the recent messages of one conversation, bounded by count and by tokens."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from evo_tr.messages import Message, Role

# ChatML wraps every message in <|im_start|>role\n … <|im_end|>\n: about four tokens of framing.
MESSAGE_OVERHEAD_TOKENS = 4
# After overflowing, the window shrinks to this share of its limits.
LOW_WATER = 0.5


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

    def _turn_messages(self) -> int:
        """User and assistant messages: retrieved-memory (system) blocks ride along and do not count."""
        return sum(m.role != "system" for m, _ in self._items)

    def _over(self, messages: int, tokens: int) -> bool:
        return self._turn_messages() > messages or self.tokens > tokens

    def _slide(self) -> None:
        """Over a limit, drop the oldest down to LOW_WATER of both limits at once (llama.cpp's context shift
        also discards half): the history's prefix then stays the same for several turns, so its KV cache is reused."""
        if not self._over(self.max_messages, self.max_tokens):
            return
        low_messages, low_tokens = int(self.max_messages * LOW_WATER), int(self.max_tokens * LOW_WATER)
        while self._items and self._over(low_messages, low_tokens):
            self._items.popleft()
            self.dropped += 1
        # Start at a turn: its memory block and question, never an answer whose question slid out.
        while self._items and not self._starts_turn():
            self._items.popleft()
            self.dropped += 1

    def _starts_turn(self) -> bool:
        first = self._items[0][0].role
        return first == "user" or (first == "system" and len(self._items) > 1 and self._items[1][0].role == "user")

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

    def pop(self, n: int = 1) -> None:
        """Remove the newest n messages (regenerating an answer)."""
        for _ in range(min(n, len(self._items))):
            self._items.pop()

    def __len__(self) -> int:
        return len(self._items)
