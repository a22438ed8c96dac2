"""Explicit statements the user makes about themselves ("Benim adım Kaan", "Remember that …"), in TR and EN.

Rules, not a model: they run on every message in well under a millisecond and never invent a fact.
Each captured fact is rewritten in the third person so that, injected into a later prompt, it cannot
be mistaken for something the assistant said about itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from evo_tr.text import turkish_lower

_TR_UPPER = str.maketrans({"i": "İ", "ı": "I"})

_NAME = r"(?P<v>[^\W\d_][\w'’-]*(?:\s+[A-ZÇĞİÖŞÜ][\w'’-]*)?)"
_PLACE = r"(?P<v>(?-i:[A-ZÇĞİÖŞÜ])[\w-]*(?:\s+(?-i:[A-ZÇĞİÖŞÜ])[\w-]*)?)"
_REST = r"(?P<v>.{2,300}?)"
_END = r"\s*(?:[.!]|$)"
_CLAUSE_END = r"(?=\s*(?:[.!,;]|$)|\s+(?:ve|and|ama|but)\s)"
# Words that make a "value" a question, not a fact: "Benim adım neydi?"
_QUESTION_WORDS = {
    "ne", "neydi", "nedir", "ney", "kim", "kimdi", "nere", "nerede", "neresi", "nereydi", "hangi", "kaç",
    "mı", "mi", "mu", "mü", "what", "who", "where", "which", "how",
}


@dataclass(frozen=True)
class CapturedFact:
    """A fact found in a message: the stored (third-person) text, its type, language and the rule that fired."""

    text: str
    type: str
    lang: str
    rule: str


@dataclass(frozen=True)
class Rule:
    name: str
    lang: str
    type: str
    pattern: re.Pattern[str]
    render: Callable[[re.Match[str]], str]


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.UNICODE)


def _v(m: re.Match[str]) -> str:
    return m.group("v").strip().rstrip(".,;:!")


def _title(value: str) -> str:
    """Names typed in lower case get a capital, Turkish-aware ('ilker' → 'İlker')."""
    return " ".join(w[:1].translate(_TR_UPPER).upper() + w[1:] for w in value.split())


def _lower_first(value: str) -> str:
    return turkish_lower(value[:1]) + value[1:]


def _sentence_case(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else text


RULES: tuple[Rule, ...] = (
    # Explicit "remember" requests keep the user's own words.
    Rule("tr_remember", "tr", "fact", _rx(r"(?:bunu|şunu)?\s*(?:hatırla|unutma)\s*[:：,-]\s*" + _REST + r"\s*$"), lambda m: _sentence_case(_v(m))),
    Rule("tr_remember_suffix", "tr", "fact", _rx(r"^" + _REST + r"[,;]?\s+(?:bunu\s+)?(?:unutma|hatırla)\s*[.!]*$"), lambda m: _sentence_case(_v(m))),
    Rule("en_remember", "en", "fact", _rx(r"(?:please\s+)?remember(?:\s+that)?\s*[:,-]?\s+" + _REST + r"\s*$"), lambda m: _sentence_case(_v(m))),
    # Name
    Rule("tr_name", "tr", "fact", _rx(r"(?:^|\bbenim\s+|[,;]\s*)(?:adım|ismim)\s+" + _NAME + r"(?:'?(?:dır|dir|dur|dür|tır|tir))?" + _CLAUSE_END), lambda m: f"Kullanıcının adı {_title(_v(m))}."),
    Rule("tr_name_call", "tr", "fact", _rx(r"bana\s+" + _NAME + r"\s+(?:de|diyebilirsin|diye\s+hitap\s+et)" + _END), lambda m: f"Kullanıcıya {_v(m)} diye hitap edilmeli."),
    Rule("en_name", "en", "fact", _rx(r"\bmy\s+name\s+is\s+" + _NAME + _CLAUSE_END), lambda m: f"The user's name is {_title(_v(m))}."),
    Rule("en_call", "en", "fact", _rx(r"\bcall\s+me\s+" + _NAME + _END), lambda m: f"The user wants to be called {_v(m)}."),
    # Where they live / work
    Rule("tr_city", "tr", "fact", _rx(r"(?P<v>(?-i:[A-ZÇĞİÖŞÜ])[\w'’]+(?:\s+(?:de|da|te|ta|şehrinde|ilinde|ilçesinde|tarafında))?)\s+(?:yaşıyorum|oturuyorum)" + _CLAUSE_END), lambda m: f"Kullanıcı {_v(m)} yaşıyor."),
    Rule("en_city", "en", "fact", _rx(r"\bi\s+(?:live|am\s+living)\s+in\s+" + _PLACE + _CLAUSE_END), lambda m: f"The user lives in {_v(m)}."),
    Rule("tr_job", "tr", "fact", _rx(r"(?:benim\s+)?mesleğim\s+" + _REST + _END), lambda m: f"Kullanıcının mesleği {_v(m)}."),
    Rule("tr_work", "tr", "fact", _rx(r"(?P<v>[\w'’ ]{2,60}?(?:\s+olarak)?)\s+çalışıyorum" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} çalışıyor."),
    Rule("en_work", "en", "fact", _rx(r"\bi\s+work\s+(?P<v>(?:as|at|for)\s+.{2,80}?)" + _END), lambda m: f"The user works {_v(m)}."),
    # Age and birthday
    Rule("tr_age", "tr", "fact", _rx(r"(?P<v>\d{1,3})\s+yaşındayım" + _END), lambda m: f"Kullanıcı {_v(m)} yaşında."),
    Rule("en_age", "en", "fact", _rx(r"\bi\s+am\s+(?P<v>\d{1,3})\s+years?\s+old" + _END), lambda m: f"The user is {_v(m)} years old."),
    Rule("tr_birthday", "tr", "fact", _rx(r"doğum\s+günüm\s+" + _REST + _END), lambda m: f"Kullanıcının doğum günü {_v(m)}."),
    Rule("en_birthday", "en", "fact", _rx(r"\bmy\s+birthday\s+is\s+(?:on\s+)?" + _REST + _END), lambda m: f"The user's birthday is {_v(m)}."),
    # Preferences
    Rule("tr_favorite", "tr", "preference", _rx(r"en\s+sevdiğim\s+(?P<v>.{2,120}?)" + _END), lambda m: f"Kullanıcının en sevdiği {_v(m)}."),
    Rule("en_favorite", "en", "preference", _rx(r"\bmy\s+favou?rite\s+(?P<v>.{2,120}?)" + _END), lambda m: f"The user's favourite {_v(m)}."),
    Rule("tr_like", "tr", "preference", _rx(r"(?P<v>[\w'’ ]{2,80}?)\s+(?:çok\s+)?(?:seviyorum|severim|tercih\s+ederim)" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} seviyor."),
    Rule("tr_dislike", "tr", "preference", _rx(r"(?P<v>[\w'’ ]{2,80}?)\s+(?:sevmiyorum|sevmem)" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} sevmiyor."),
    Rule("en_like", "en", "preference", _rx(r"\bi\s+(?:really\s+)?(?:like|love|prefer)\s+(?P<v>.{2,80}?)" + _END), lambda m: f"The user likes {_v(m)}."),
    Rule("en_dislike", "en", "preference", _rx(r"\bi\s+(?:don't|do\s+not)\s+like\s+(?P<v>.{2,80}?)" + _END), lambda m: f"The user does not like {_v(m)}."),
)

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def _is_question(sentence: str, value: str) -> bool:
    words = set(re.findall(r"\w+", turkish_lower(value)))
    return sentence.rstrip().endswith("?") or bool(words & _QUESTION_WORDS)


def capture_facts(message: str) -> list[CapturedFact]:
    """Facts the user states explicitly in `message`; questions ('Benim adım neydi?') capture nothing."""
    found: list[CapturedFact] = []
    seen: set[str] = set()
    for sentence in _SENTENCES.split(message.strip()):
        sentence = sentence.strip()
        if not sentence or sentence.endswith("?"):
            continue
        for rule in RULES:
            match = rule.pattern.search(sentence)
            if not match or _is_question(sentence, match.group("v")):
                continue
            text = rule.render(match)
            if text not in seen:
                seen.add(text)
                found.append(CapturedFact(text, rule.type, rule.lang, rule.name))
            if rule.name.endswith(("remember", "remember_suffix")):
                break  # an explicit "remember" request is stored whole, not also split by other rules
    return found
