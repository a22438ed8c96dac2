"""The Turkish knowledge pack shipped in the package: proverbs, idioms and short reference entries.

Written by the EVO-TR team (see data/README.md), versioned by `pack.json`, loaded into the knowledge store
on first use and reloaded when the package brings a new version. Its vectors ship next to it
(`embeddings.npy`, float16, built by scripts/build_knowledge_pack.py with the same e5 embedder), so loading
1,600 entries takes seconds instead of half a minute of embedding; a test checks they match the embedder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from evo_tr.errors import EvoError

PACK_NAME = "Türkçe bilgi paketi"
FILES = (("atasozleri.jsonl", "atasozu"), ("deyimler.jsonl", "deyim"), ("bilgi.jsonl", "bilgi"))
SECTION = {"atasozu": "Atasözleri", "deyim": "Deyimler"}
CATEGORY_TITLE = {
    "tarih": "Tarih", "coğrafya": "Coğrafya", "bayramlar ve gelenekler": "Bayramlar ve gelenekler", "mutfak": "Mutfak",
    "edebiyat ve sanat": "Edebiyat ve sanat", "yurttaşlık": "Yurttaşlık",
}


def pack_dir() -> Path:
    return Path(str(resources.files("evo_tr") / "data" / "knowledge" / "pack"))


@dataclass(frozen=True)
class PackEntry:
    """One entry as stored: the text the model reads, the source label a person reads, and where it lives."""

    id: str
    kind: str
    text: str
    label: str
    section: str
    file: str
    line: int
    head: str  # the proverb, the idiom, or the reference entry's title


def render(entry: dict, kind: str) -> tuple[str, str, str, str]:
    """(text, section, label, head) of one pack line."""
    if kind == "atasozu":
        text = f"Atasözü: {entry['proverb']}\nAnlamı: {entry['meaning']}\nÖrnek: {entry['example']}"
        return text, SECTION[kind], f"{PACK_NAME} › {SECTION[kind]} › “{entry['proverb']}”", entry["proverb"]
    if kind == "deyim":
        text = f"Deyim: {entry['idiom']}\nAnlamı: {entry['meaning']}\nÖrnek: {entry['example']}"
        return text, SECTION[kind], f"{PACK_NAME} › {SECTION[kind]} › “{entry['idiom']}”", entry["idiom"]
    section = CATEGORY_TITLE.get(entry["category"], entry["category"])
    return f"{entry['title']}: {entry['text']}", section, f"{PACK_NAME} › {section} › {entry['title']}", entry["title"]


@lru_cache(maxsize=1)
def load_pack() -> tuple[PackEntry, ...]:
    """Every entry of the shipped pack, in file order."""
    out = []
    for name, kind in FILES:
        path = pack_dir() / name
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            entry = json.loads(line)
            text, section, label, head = render(entry, kind)
            out.append(PackEntry(entry["id"], kind, text, label, section, name, number, head))
    return tuple(out)


def content_hash(entries: tuple[PackEntry, ...] | None = None) -> str:
    """Hash of every entry's id and text: what the shipped vectors were computed from."""
    h = hashlib.sha256()
    for e in entries or load_pack():
        h.update(f"{e.id}\t{e.text}\n".encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def manifest() -> dict:
    """pack.json: version, counts, content hash and embedder of the shipped vectors."""
    return json.loads((pack_dir() / "pack.json").read_text(encoding="utf-8"))


def shipped_vectors(embedder_name: str) -> np.ndarray | None:
    """The pack's vectors if they were made for these entries with this embedder, else None (compute them)."""
    meta = manifest()
    path = pack_dir() / "embeddings.npy"
    if meta.get("embedder") != embedder_name or meta.get("content_sha256") != content_hash() or not path.is_file():
        return None
    vectors = np.load(path).astype(np.float32)
    if vectors.shape[0] != len(load_pack()):
        raise EvoError(f"The knowledge pack's vectors ({vectors.shape[0]}) do not match its {len(load_pack())} entries.",
                       "Reinstall evo-tr, or rebuild them with scripts/build_knowledge_pack.py.")
    return vectors
