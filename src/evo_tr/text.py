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
