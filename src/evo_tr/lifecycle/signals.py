"""Implicit feedback: the user says the answer was wrong, or asks the same question again."""

from __future__ import annotations

import re

from evo_tr.text import content_stems, normalize

# Said right after an answer, these mean "that was wrong" (Turkish and English, lower-cased the Turkish way).
CORRECTION = re.compile(
    r"\b(yanlış|hatalı|öyle değil|doğru değil|yanıldın|olmadı|çalışmıyor|hata veriyor"
    r"|that'?s wrong|that is wrong|wrong answer|incorrect|not correct|not right|doesn'?t work|does not work)\b"
)
CORRECTION_HEAD_CHARS = 80  # only the start of the message: a correction is said first
REPEAT_OVERLAP = 0.75


def is_correction(text: str) -> bool:
    return bool(CORRECTION.search(normalize(text)[:CORRECTION_HEAD_CHARS]))


def is_repeat(text: str, previous: str | None) -> bool:
    """Same content words as the previous question (asked again or reworded closely)."""
    if not previous:
        return False
    a, b = set(content_stems(text)), set(content_stems(previous))
    if not a or not b:
        return normalize(text) == normalize(previous)
    return len(a & b) / len(a | b) >= REPEAT_OVERLAP


def implicit_feedback(text: str, previous: str | None) -> str | None:
    """'correction', 'repeat' or None for a new message, given the user's previous message."""
    if is_correction(text):
        return "correction"
    if is_repeat(text, previous):
        return "repeat"
    return None
