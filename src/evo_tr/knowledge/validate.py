"""Checks every entry of the Turkish knowledge pack must pass: fields present, no duplicates, Turkish casing
and diacritics. Used by the pack's test and by the writers while they write (scripts/knowledge/check.py).

Diacritics: a word the Turkish word list (wordfreq) does not know, but which it knows once an ASCII letter is
swapped for its Turkish twin (c→ç, g→ğ, i→ı, ı→i, o→ö, s→ş, u→ü; "ogretmen" → "öğretmen", "Istanbul" →
"İstanbul"), is written without its diacritics. Inflected forms the list does not know are not flagged.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from evo_tr.text import normalize, turkish_lower

KINDS = {
    "atasozu": ("proverb", "meaning", "example"),
    "deyim": ("idiom", "meaning", "example"),
    "bilgi": ("category", "title", "text"),
}
CATEGORIES = ("tarih", "coğrafya", "bayramlar ve gelenekler", "mutfak", "edebiyat ve sanat", "yurttaşlık")
TWINS = {"c": "ç", "g": "ğ", "i": "ı", "ı": "i", "o": "ö", "s": "ş", "u": "ü"}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
KNOWN_ZIPF = 2.5  # a twin this common is a real word, not noise
GAP = 1.5  # ...and this much more common than the word as written
RARE_ZIPF = 4.0
MAX_SWAPS = 3


@lru_cache(maxsize=200_000)
def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "tr")


def missing_diacritics(word: str) -> str | None:
    """The Turkish spelling of `word` when it looks written without its diacritics, else None.

    wordfreq's Turkish list comes from web text, so it knows the ASCII spellings too ("kucuk" 3.6, "küçük"
    5.8): a word is flagged when a twin is at least GAP more frequent and the word itself is rare-ish
    ("bas" 3.9 next to "baş" 5.3 is a real word and stays).
    """
    low = turkish_lower(word)
    if len(low) < 3:
        return None
    own = _zipf(low)
    if word[0] == "I" and _zipf("i" + low[1:]) >= own + 1.0:  # "Istanbul": the capital İ lost its dot
        return "İ" + word[1:]
    if own >= RARE_ZIPF:
        return None
    spots = [i for i, ch in enumerate(low) if ch in TWINS][:8]
    best, best_zipf = None, own + GAP
    for n in range(1, MAX_SWAPS + 1):
        for combo in itertools.combinations(spots, n):
            chars = list(low)
            for i in combo:
                chars[i] = TWINS[chars[i]]
            twin = "".join(chars)
            if _zipf(twin) >= max(best_zipf, KNOWN_ZIPF):
                best, best_zipf = twin, _zipf(twin)
    return best


def sentence_problems(text: str, *, field: str, sentence: bool = True) -> list[str]:
    """Empty, untrimmed, bad casing or end, words missing diacritics."""
    problems = []
    if not isinstance(text, str) or not text.strip():
        return [f"{field}: empty"]
    if text != text.strip() or "  " in text:
        problems.append(f"{field}: extra spaces")
    if sentence:
        first = text.lstrip("\"'«“(")[:1]
        if first and first.isalpha() and not first.isupper():
            problems.append(f"{field}: should start with a capital letter")
        if text.rstrip("\"'»”)")[-1:] not in ".!?…":
            problems.append(f"{field}: should end with . ! ? or …")
    for word in _WORD.findall(text):
        twin = missing_diacritics(word)
        if twin:
            problems.append(f"{field}: '{word}' looks written without diacritics (→ '{twin}'?)")
    return problems


def entry_problems(entry: dict[str, Any], kind: str) -> list[str]:
    fields = KINDS[kind]
    problems = []
    for key in fields:
        if key not in entry:
            problems.append(f"missing field '{key}'")
    extra = set(entry) - set(fields) - {"id", "note"}
    if extra:
        problems.append(f"unknown fields {sorted(extra)}")
    if problems:
        return problems
    if kind == "bilgi":
        if entry["category"] not in CATEGORIES:
            problems.append(f"category '{entry['category']}' not one of {CATEGORIES}")
        problems += sentence_problems(entry["title"], field="title", sentence=False)
        problems += sentence_problems(entry["text"], field="text")
        if len(entry["text"]) > 700:
            problems.append("text: longer than 700 characters (keep entries short: 1-4 sentences)")
    else:
        head = fields[0]
        problems += sentence_problems(entry[head], field=head, sentence=(kind == "atasozu"))
        if kind == "deyim":
            if entry[head][:1].isupper() and not entry[head].startswith(("Allah", "Hızır", "Kaf", "Nuh")):
                problems.append("idiom: write it in lower case as a dictionary headword (e.g. 'etekleri zil çalmak')")
            if entry[head].rstrip()[-1:] in ".!?":
                problems.append("idiom: no end punctuation on the headword")
        problems += sentence_problems(entry["meaning"], field="meaning")
        problems += sentence_problems(entry["example"], field="example")
        if normalize(entry["example"]) == normalize(entry[head]):
            problems.append("example: must use the expression in a sentence, not repeat it")
    return problems


def key_of(entry: dict[str, Any], kind: str) -> str:
    """Duplicate key: the headword (or title) normalised the Turkish way, punctuation dropped."""
    head = entry.get(KINDS[kind][1] if kind == "bilgi" else KINDS[kind][0], "")
    return " ".join(_WORD.findall(normalize(str(head))))


def check_file(path: Path, kind: str, seen: dict[str, str] | None = None) -> list[str]:
    """Every problem in one JSONL file of `kind`, as 'file:line: problem'; `seen` spans several files."""
    seen = {} if seen is None else seen
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            out.append(f"{where}: empty line")
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append(f"{where}: not JSON ({exc.msg})")
            continue
        out += [f"{where}: {p}" for p in entry_problems(entry, kind)]
        key = key_of(entry, kind)
        if key in seen:
            out.append(f"{where}: duplicate of {seen[key]}")
        else:
            seen[key] = where
    return out


def check_files(paths: Iterable[Path], kind: str) -> list[str]:
    seen: dict[str, str] = {}
    return [p for path in paths for p in check_file(path, kind, seen)]
