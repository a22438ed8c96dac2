"""Explicit statements the user makes about themselves ("Benim adım Kaan", "Remember that …"), in TR and EN.

Rules, not a model: they run on every message in well under a millisecond and never invent a fact.
Each captured fact is rewritten in the third person so that, injected into a later prompt, it cannot
be mistaken for something the assistant said about itself. Facts about one attribute (the user's name,
city, job; a pet's or relative's name) carry an attribute key, so that a newer statement of the same
attribute supersedes the older one instead of sitting next to it as an equal fact (see MemoryStore).
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
    """A fact found in a message: the stored (third-person) text, its type, language, the rule that fired and
    the attribute it states ("" when several can hold at once, such as likes)."""

    text: str
    type: str
    lang: str
    rule: str
    attribute: str = ""


@dataclass(frozen=True)
class Rule:
    name: str
    lang: str
    type: str
    pattern: re.Pattern[str]
    render: Callable[[re.Match[str]], str]
    attribute: str | Callable[[re.Match[str]], str] = ""

    def attribute_of(self, match: re.Match[str]) -> str:
        return self.attribute(match) if callable(self.attribute) else self.attribute


# Pets and relatives, as the user names them (first-person genitive) → the third-person genitive and the
# attribute key. A newer "Kedimin adı …" supersedes the older one, as the product plan asks; friends are
# left out on purpose (people have many).
RELATIONS_TR: dict[str, tuple[str, str]] = {
    "kedimin": ("kedisinin", "cat"), "köpeğimin": ("köpeğinin", "dog"), "kuşumun": ("kuşunun", "bird"),
    "annemin": ("annesinin", "mother"), "babamın": ("babasının", "father"), "eşimin": ("eşinin", "spouse"),
    "karımın": ("karısının", "spouse"), "kocamın": ("kocasının", "spouse"), "kızımın": ("kızının", "daughter"),
    "oğlumun": ("oğlunun", "son"), "kardeşimin": ("kardeşinin", "sibling"), "ablamın": ("ablasının", "older_sister"),
    "abimin": ("abisinin", "older_brother"), "ağabeyimin": ("ağabeyinin", "older_brother"), "dedemin": ("dedesinin", "grandfather"),
    "ninemin": ("ninesinin", "grandmother"), "anneannemin": ("anneannesinin", "grandmother"), "babaannemin": ("babaannesinin", "grandmother_f"),
    "teyzemin": ("teyzesinin", "aunt_m"), "halamın": ("halasının", "aunt_f"), "dayımın": ("dayısının", "uncle_m"),
    "amcamın": ("amcasının", "uncle_f"), "sevgilimin": ("sevgilisinin", "partner"), "nişanlımın": ("nişanlısının", "fiance"),
    "patronumun": ("patronunun", "boss"),
}
RELATIONS_EN: dict[str, str] = {
    "cat": "cat", "dog": "dog", "bird": "bird", "mother": "mother", "mom": "mother", "mum": "mother", "father": "father",
    "dad": "father", "wife": "spouse", "husband": "spouse", "daughter": "daughter", "son": "son", "sister": "sister",
    "brother": "brother", "grandmother": "grandmother", "grandfather": "grandfather", "girlfriend": "partner",
    "boyfriend": "partner", "partner": "partner", "boss": "boss",
}
_REL_TR = "(?P<rel>" + "|".join(sorted(RELATIONS_TR, key=len, reverse=True)) + ")"
_REL_EN = "(?P<rel>" + "|".join(sorted(RELATIONS_EN, key=len, reverse=True)) + ")"


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.UNICODE)


def _v(m: re.Match[str]) -> str:
    return m.group("v").strip().rstrip(".,;:!")


def _title(value: str) -> str:
    """Names typed in lower case get a capital, Turkish-aware ('ilker' → 'İlker')."""
    return " ".join(w[:1].translate(_TR_UPPER).upper() + w[1:] for w in value.split())


def _lower_first(value: str) -> str:
    return turkish_lower(value[:1]) + value[1:]


def _relation_tr(m: re.Match[str]) -> tuple[str, str]:
    return RELATIONS_TR[turkish_lower(m.group("rel"))]


def _favorite_key(m: re.Match[str]) -> str:
    """'En sevdiğim yemek mantı' states the favourite *yemek*: one current value per category."""
    category = turkish_lower(m.group("v").split()[0]) if m.group("v").split() else ""
    return f"user.favorite.{category}" if len(m.group("v").split()) > 1 else ""


def _sentence_case(text: str, lang: str = "tr") -> str:
    """A capital first letter and a full stop; Turkish-aware for Turkish ('istanbul' → 'İstanbul', not 'Istanbul':
    found by the fact-capture fuzzing of issue 27)."""
    text = text.strip().rstrip(".")
    if not text:
        return text
    first = text[:1].translate(_TR_UPPER) if lang == "tr" else text[:1]
    return first.upper() + text[1:] + "."


RULES: tuple[Rule, ...] = (
    # Explicit "remember" requests keep the user's own words.
    Rule("tr_remember", "tr", "fact", _rx(r"(?:bunu|şunu)?\s*(?:hatırla|unutma)\s*[:：,-]\s*" + _REST + r"\s*$"), lambda m: _sentence_case(_v(m))),
    Rule("tr_remember_suffix", "tr", "fact", _rx(r"^" + _REST + r"[,;]?\s+(?:bunu\s+)?(?:unutma|hatırla)\s*[.!]*$"), lambda m: _sentence_case(_v(m))),
    Rule("en_remember", "en", "fact", _rx(r"(?:please\s+)?remember(?:\s+that)?\s*[:,-]?\s+" + _REST + r"\s*$"), lambda m: _sentence_case(_v(m), "en")),
    # Pets and relatives ("Kedimin adı Tarçın" is the cat's name, not the user's)
    Rule("tr_relation_name", "tr", "fact", _rx(r"(?:^|\bbenim\s+|[,;]\s*)" + _REL_TR + r"\s+(?:adı|ismi)\s+" + _NAME + r"(?:'?(?:dır|dir|dur|dür|tır|tir))?" + _CLAUSE_END),
         lambda m: f"Kullanıcının {_relation_tr(m)[0]} adı {_title(_v(m))}.", lambda m: f"{_relation_tr(m)[1]}.name"),
    Rule("en_relation_name", "en", "fact", _rx(r"\bmy\s+" + _REL_EN + r"(?:'s\s+name\s+is|\s+is\s+called|\s+is\s+named)\s+" + _NAME + _CLAUSE_END),
         lambda m: f"The user's {turkish_lower(m.group('rel'))} is named {_title(_v(m))}.", lambda m: f"{RELATIONS_EN[turkish_lower(m.group('rel'))]}.name"),
    # Name
    Rule("tr_name", "tr", "fact", _rx(r"(?:^|\bbenim\s+|[,;]\s*)(?:adım|ismim)\s+" + _NAME + r"(?:'?(?:dır|dir|dur|dür|tır|tir))?" + _CLAUSE_END), lambda m: f"Kullanıcının adı {_title(_v(m))}.", "user.name"),
    Rule("tr_name_call", "tr", "fact", _rx(r"bana\s+" + _NAME + r"\s+(?:de|diyebilirsin|diye\s+hitap\s+et)" + _END), lambda m: f"Kullanıcıya {_v(m)} diye hitap edilmeli.", "user.call"),
    Rule("en_name", "en", "fact", _rx(r"\bmy\s+name\s+is\s+" + _NAME + _CLAUSE_END), lambda m: f"The user's name is {_title(_v(m))}.", "user.name"),
    Rule("en_call", "en", "fact", _rx(r"\bcall\s+me\s+" + _NAME + _END), lambda m: f"The user wants to be called {_v(m)}.", "user.call"),
    # Where they live / work (the city starts a word: "0A0 yaşıyorum" once captured "A0", found by fuzzing)
    Rule("tr_city", "tr", "fact", _rx(r"(?<![\w'’])(?P<v>(?-i:[A-ZÇĞİÖŞÜ])[\w'’]+(?:\s+(?:de|da|te|ta|şehrinde|ilinde|ilçesinde|tarafında))?)\s+(?:yaşıyorum|oturuyorum)" + _CLAUSE_END), lambda m: f"Kullanıcı {_v(m)} yaşıyor.", "user.city"),
    Rule("en_city", "en", "fact", _rx(r"\bi\s+(?:live|am\s+living)\s+in\s+" + _PLACE + _CLAUSE_END), lambda m: f"The user lives in {_v(m)}.", "user.city"),
    Rule("tr_job", "tr", "fact", _rx(r"(?:benim\s+)?mesleğim\s+" + _REST + _END), lambda m: f"Kullanıcının mesleği {_v(m)}.", "user.job"),
    Rule("tr_work", "tr", "fact", _rx(r"(?P<v>[\w'’ ]{2,60}?(?:\s+olarak)?)\s+çalışıyorum" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} çalışıyor.",
         lambda m: "user.job" if turkish_lower(_v(m)).endswith("olarak") else "user.work"),
    Rule("en_work", "en", "fact", _rx(r"\bi\s+work\s+(?P<v>(?:as|at|for)\s+.{2,80}?)" + _END), lambda m: f"The user works {_v(m)}.",
         lambda m: "user.job" if _v(m).lower().startswith("as ") else "user.work"),
    # Age and birthday
    Rule("tr_age", "tr", "fact", _rx(r"(?P<v>\d{1,3})\s+yaşındayım" + _END), lambda m: f"Kullanıcı {_v(m)} yaşında.", "user.age"),
    Rule("en_age", "en", "fact", _rx(r"\bi\s+am\s+(?P<v>\d{1,3})\s+years?\s+old" + _END), lambda m: f"The user is {_v(m)} years old.", "user.age"),
    Rule("tr_birthday", "tr", "fact", _rx(r"doğum\s+günüm\s+" + _REST + _END), lambda m: f"Kullanıcının doğum günü {_v(m)}.", "user.birthday"),
    Rule("en_birthday", "en", "fact", _rx(r"\bmy\s+birthday\s+is\s+(?:on\s+)?" + _REST + _END), lambda m: f"The user's birthday is {_v(m)}.", "user.birthday"),
    # Preferences
    Rule("tr_favorite", "tr", "preference", _rx(r"en\s+sevdiğim\s+(?P<v>.{2,120}?)" + _END), lambda m: f"Kullanıcının en sevdiği {_v(m)}.", _favorite_key),
    Rule("en_favorite", "en", "preference", _rx(r"\bmy\s+favou?rite\s+(?P<v>.{2,120}?)" + _END), lambda m: f"The user's favourite {_v(m)}.", _favorite_key),
    Rule("tr_like", "tr", "preference", _rx(r"(?P<v>[\w'’ ]{2,80}?)\s+(?:çok\s+)?(?:seviyorum|severim|tercih\s+ederim)" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} seviyor."),
    Rule("tr_dislike", "tr", "preference", _rx(r"(?P<v>[\w'’ ]{2,80}?)\s+(?:sevmiyorum|sevmem)" + _END), lambda m: f"Kullanıcı {_lower_first(_v(m))} sevmiyor."),
    Rule("en_like", "en", "preference", _rx(r"\bi\s+(?:really\s+)?(?:like|love|prefer)\s+(?P<v>.{2,80}?)" + _END), lambda m: f"The user likes {_v(m)}."),
    Rule("en_dislike", "en", "preference", _rx(r"\bi\s+(?:don't|do\s+not)\s+like\s+(?P<v>.{2,80}?)" + _END), lambda m: f"The user does not like {_v(m)}."),
)

# The third-person forms the rules write (and the night's extraction prompt asks for), read back to their
# attribute: a fact stored by the night or imported from an export supersedes like a captured one.
_REL3_TR = "(?P<rel3>" + "|".join(sorted({v[0] for v in RELATIONS_TR.values()}, key=len, reverse=True)) + ")"
_REL3_KEY = {third: key for third, key in RELATIONS_TR.values()}
THIRD_PERSON: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_rx(r"^kullanıcının\s+" + _REL3_TR + r"\s+(?:adı|ismi)\s"), lambda m: f"{_REL3_KEY[turkish_lower(m.group('rel3'))]}.name"),
    (_rx(r"^kullanıcının\s+(?:adı|ismi)\s"), "user.name"),
    (_rx(r"^kullanıcıya\s+.+\s+diye\s+hitap"), "user.call"),
    (_rx(r"^kullanıcı\s+\S.*\s(?:yaşıyor|oturuyor)\.?$"), "user.city"),
    (_rx(r"^kullanıcının\s+mesleği\s"), "user.job"),
    (_rx(r"^kullanıcı\s+\S.*\solarak\s+çalışıyor\.?$"), "user.job"),
    (_rx(r"^kullanıcı\s+\d{1,3}\s+yaşında"), "user.age"),
    (_rx(r"^kullanıcının\s+doğum\s+günü\s"), "user.birthday"),
    (_rx(r"^the\s+user's\s+" + _REL_EN + r"\s+is\s+named\s"), lambda m: f"{RELATIONS_EN[turkish_lower(m.group('rel'))]}.name"),
    (_rx(r"^the\s+user's\s+name\s+is\s"), "user.name"),
    (_rx(r"^the\s+user\s+lives\s+in\s"), "user.city"),
    (_rx(r"^the\s+user\s+works\s+as\s"), "user.job"),
    (_rx(r"^the\s+user\s+is\s+\d{1,3}\s+years?\s+old"), "user.age"),
    (_rx(r"^the\s+user's\s+birthday\s"), "user.birthday"),
)


# Questions that ask for one attribute ("Benim adım neydi?", "Kedimin adı ne?", "Babamın mesleği neydi?"):
# a stored fact about another attribute is not relevant to them, however close its words (the grandmother's
# name for the user's, the user's job for the father's). Checked in order; first match wins.
_ASK_REL = _rx(r"\b" + _REL_TR + r"\s+(?P<what>adı|ismi|adını|ismini|mesleği|mesleğini|işi|doğum\s+günü)\b")
_ASK_WHAT = {"adı": "name", "ismi": "name", "adını": "name", "ismini": "name", "mesleği": "job", "mesleğini": "job", "işi": "job"}
_ASK_REL_EN = _rx(r"\bmy\s+" + _REL_EN + r"(?:'s)?\s+(?P<what>name|called|named|job|birthday)\b")
QUESTION_ATTRIBUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_rx(r"\b(?:adım|ismim|adımı|ismimi)\b"), "user.name"),
    (_rx(r"\b(?:yaşıyorum|oturuyorum|yaşadığımı|oturduğumu|yaşadığım\s+şehir)\b"), "user.city"),
    (_rx(r"\b(?:kaç\s+yaşındayım|yaşım\s+kaç|kaç\s+yaşında\s+olduğumu)\b"), "user.age"),
    (_rx(r"\bdoğum\s+günüm\b"), "user.birthday"),
    (_rx(r"\b(?:mesleğim|mesleğimi|ne\s+iş\s+yapıyorum|ne\s+iş\s+yaptığımı)\b"), "user.job"),
    (_rx(r"\bmy\s+name\b|\bwhat\s+am\s+i\s+called\b"), "user.name"),
    (_rx(r"\bwhere\s+do\s+i\s+live\b|\bwhich\s+city\s+do\s+i\s+live\b"), "user.city"),
    (_rx(r"\bhow\s+old\s+am\s+i\b"), "user.age"),
    (_rx(r"\bmy\s+birthday\b"), "user.birthday"),
    (_rx(r"\bmy\s+job\b|\bwhat\s+do\s+i\s+do\s+for\s+a\s+living\b"), "user.job"),
)


def question_attributes(text: str) -> frozenset[str]:
    """The attributes a question asks for ("user.name", "cat.name", "father.job", …); empty when it asks for none.

    "What is my name and which city do I live in?" asks for two.
    """
    flat = " ".join(text.split())
    found = set()
    for match in _ASK_REL.finditer(flat):
        what = turkish_lower(match.group("what"))
        found.add(f"{_relation_tr(match)[1]}.{_ASK_WHAT.get(what, 'birthday' if what.startswith('doğum') else what)}")
    for match in _ASK_REL_EN.finditer(flat):
        what = match.group("what").lower()
        found.add(f"{RELATIONS_EN[turkish_lower(match.group('rel'))]}.{'name' if what in ('called', 'named') else what}")
    rest = _ASK_REL_EN.sub(" ", _ASK_REL.sub(" ", flat))  # "Kedimin adı" does not also ask for the user's name
    found.update(attribute for pattern, attribute in QUESTION_ATTRIBUTES if pattern.search(rest))
    return frozenset(found)


def attribute_of(text: str) -> str:
    """The attribute a stored fact states ("user.name", "cat.name", …), or "" when it states none.

    Works on the user's own words ("Kedimin adı Tarçın", a /remember) and on the third-person form the
    rules and the night write ("Kullanıcının kedisinin adı Tarçın."), so every path that stores a fact
    supersedes the same way.
    """
    flat = " ".join(text.split())
    for pattern, attribute in THIRD_PERSON:
        match = pattern.search(flat)
        if match:
            return attribute(match) if callable(attribute) else attribute
    keys = {f.attribute for f in capture_facts(flat) if f.attribute}
    return keys.pop() if len(keys) == 1 else ""


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
                attribute = rule.attribute_of(match)
                if rule.name.endswith(("remember", "remember_suffix")):  # the user's own words; what do they state?
                    attribute = attribute_of(_v(match))
                found.append(CapturedFact(text, rule.type, rule.lang, rule.name, attribute))
            if rule.name.endswith(("remember", "remember_suffix")):
                break  # an explicit "remember" request is stored whole, not also split by other rules
    return found
