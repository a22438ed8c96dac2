"""Turkish-aware text normalisation, used everywhere text is compared or embedded."""

from __future__ import annotations

import re
import unicodedata

_TR_UPPER = str.maketrans({"I": "ı", "İ": "i"})
_SPACES = re.compile(r"\s+")


def turkish_lower(text: str) -> str:
    """Lower-case with Turkish rules: I→ı, İ→i (Python's str.lower gives i and i̇)."""
    return unicodedata.normalize("NFC", text).translate(_TR_UPPER).lower()


def normalize(text: str) -> str:
    """NFC, Turkish lower-case, collapsed whitespace."""
    return _SPACES.sub(" ", turkish_lower(text)).strip()


def has_letters(text: str) -> bool:
    """True when the text contains at least one letter (emoji, digits and punctuation do not count)."""
    return any(ch.isalpha() for ch in text)


def clip_middle(text: str, max_chars: int, marker: str = " … ") -> str:
    """Keep head and tail of an over-long text so cost stays bounded and both ends stay visible."""
    if len(text) <= max_chars:
        return text
    half = (max_chars - len(marker)) // 2
    return text[:half] + marker + text[-half:]


# Abbreviations after which a period does not end a Turkish (or English) sentence.
ABBREVIATIONS = frozenset(
    "dr prof doç yrd av sn bkz vb vs örn mah cad sok apt no tel st mr mrs ms vd age müh öğr gör hz".split()
)
_SENTENCE_CANDIDATE = re.compile(r"(?<=[.!?…])[\"'”’»)]*\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a Turkish text: a break after . ! ? … and space, except after an abbreviation ("Dr.",
    "vb.") or an ordinal number ("1. Dünya Savaşı", "19. yüzyıl"), and never inside a number ("3.5")."""
    out, start = [], 0
    for match in _SENTENCE_CANDIDATE.finditer(text):
        before = text[start : match.start()].rstrip("\"'”’»)")
        word = before.rsplit(None, 1)[-1] if before.split() else ""
        stem = word.rstrip(".").lower().lstrip("(\"'“«")
        nxt = text[match.end() : match.end() + 1]
        if word.endswith(".") and (stem in ABBREVIATIONS or (stem.isdigit() and len(stem) <= 3) or (len(stem) == 1 and stem.isalpha())):
            continue
        if nxt and nxt.islower():
            continue  # "vs. başka" and other mid-sentence periods
        out.append(text[start : match.start()].strip() + text[match.start() : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]
