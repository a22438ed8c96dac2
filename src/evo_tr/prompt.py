"""Prompt assembly above the backend: the context-budget policy (what to drop, what to cut) on a small Tokenizer.

Any engine (llama.cpp, transformers, a remote server with a local tokenizer) provides `tokenize`,
`detokenize`, `render` and `n_ctx`; the policy is the same for all of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from evo_tr.errors import EvoError
from evo_tr.messages import Message

TRUNCATION_MARKER = "\n[…]\n"
MESSAGE_COST_CACHE = 4096
_COSTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer → {(role, content): tokens}


class Tokenizer(Protocol):
    """What prompt assembly needs from an engine."""

    @property
    def n_ctx(self) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def render(self, messages: Sequence[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...


def count_messages(tok: Tokenizer, messages: Sequence[Message]) -> int:
    return tok.count_tokens(tok.render(messages))


@dataclass(frozen=True)
class FitResult:
    """Messages trimmed to the context budget, and what was cut to get there."""

    messages: list[Message]
    prompt_tokens: int
    dropped_messages: int = 0
    truncated_tokens: int = 0
    dropped_context: int = 0

    @property
    def trimmed(self) -> bool:
        return self.dropped_messages > 0 or self.truncated_tokens > 0


def fit(tok: Tokenizer, messages: Sequence[Message], reserve: int, *, context: Sequence[Message] = ()) -> FitResult:
    """Trim to n_ctx - reserve: drop the oldest turns first; never the system prompt or the current message.

    `context` (e.g. retrieved memories) goes right before the current message and is kept whole, or
    left out entirely if it does not fit next to the message. If the system prompt plus the current
    message alone do not fit, the current message is cut in the middle (head and tail kept).
    """
    if not messages:
        raise EvoError("Nothing to send: the message list is empty.")
    budget = tok.n_ctx - reserve
    system = [m for m in messages[:1] if m.role == "system"]
    current = messages[-1]
    history = list(messages[len(system) : -1])
    context = list(context)
    base = count_messages(tok, [*system, *context, current])
    if base > budget and context:
        context, dropped_context = [], len(context)
        base = count_messages(tok, [*system, current])
    else:
        dropped_context = 0
    if base > budget:
        return _truncate_current(tok, system, current, budget)
    # Chat templates are additive per message, so one message costs what it adds next to the
    # fixed part; a final full count guards templates where that is not exact.
    kept: list[Message] = []
    used = base
    costs = _cost_cache(tok)
    for msg in reversed(history):
        key = (msg.role, msg.content)
        cost = costs.get(key)
        if cost is None:  # cached: a long chat re-counts only its new messages each turn
            cost = costs[key] = count_messages(tok, [*system, msg, *context, current]) - base
        if used + cost > budget:
            break
        kept.insert(0, msg)
        used += cost
    while kept and not (kept[0].role == "user" or (kept[0].role == "system" and len(kept) > 1 and kept[1].role == "user")):
        kept.pop(0)  # start at a turn (its memory block or question), as the history buffer does
    final = [*system, *kept, *context, current]
    total = count_messages(tok, final)
    while total > budget and kept:
        kept.pop(0)
        final = [*system, *kept, *context, current]
        total = count_messages(tok, final)
    return FitResult(final, total, dropped_messages=len(history) - len(kept), dropped_context=dropped_context)


def _cost_cache(tok) -> dict[tuple[str, str], int]:
    """Per-message token cost inside a prompt (templates are additive), bounded."""
    cache = _COSTS.setdefault(tok, {})
    if len(cache) > MESSAGE_COST_CACHE:
        cache.clear()
    return cache


def _truncate_current(tok: Tokenizer, system: list[Message], current: Message, budget: int) -> FitResult:
    overhead = count_messages(tok, [*system, replace(current, content="")]) + tok.count_tokens(TRUNCATION_MARKER)
    room = budget - overhead
    if room < 16:
        raise EvoError(
            f"The system prompt alone needs {overhead} tokens, more than the {budget}-token budget.",
            "Shorten system_prompt or raise engine.n_ctx in evo.toml.",
        )
    tokens = tok.tokenize(current.content)
    head, tail = tokens[: room // 2], tokens[len(tokens) - (room - room // 2) :]
    text = tok.detokenize(head) + TRUNCATION_MARKER + tok.detokenize(tail)
    cut = replace(current, content=text)
    final = [*system, cut]
    total = count_messages(tok, final)
    while total > budget:  # detokenize/retokenize can shift by a few tokens
        head, tail = head[:-4], tail[4:]
        cut = replace(current, content=tok.detokenize(head) + TRUNCATION_MARKER + tok.detokenize(tail))
        final = [*system, cut]
        total = count_messages(tok, final)
    return FitResult(final, total, dropped_messages=0, truncated_tokens=len(tokens) - len(head) - len(tail))
