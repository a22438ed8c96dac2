"""Training data: chat-JSONL (`{"messages": [...]}`), an Alpaca importer, cleaning, deterministic split."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from evo_tr.errors import EvoError
from evo_tr.text import normalize

ROLES = ("system", "user", "assistant")
VALID_FRACTION = 0.1
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class ChatExample:
    """One training conversation; the loss is taken on its assistant messages only.

    An anchor is not learnt from: on its tokens the model is only held to the base's own predictions
    (KL to base), so an expert can learn one thing (Turkish) without drifting on another (English code)."""

    messages: tuple[tuple[str, str], ...]
    anchor: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"messages": [{"role": r, "content": c} for r, c in self.messages]} | ({"anchor": True} if self.anchor else {})

    @property
    def key(self) -> str:
        """Exact-duplicate key: Turkish-normalised text of every message."""
        return hashlib.sha256("\x1e".join(f"{r}:{normalize(c)}" for r, c in self.messages).encode()).hexdigest()

    @property
    def chars(self) -> int:
        return sum(len(c) for _, c in self.messages)


@dataclass
class CleanReport:
    """What cleaning removed and why (counts), for the CLI and the adapter metadata."""

    kept: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    too_short: int = 0
    too_long: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Limits:
    """Length filters in characters (the token limit is enforced again at training time)."""

    min_chars: int = 8
    max_chars: int = 6000
    near_duplicate_jaccard: float = 0.9


@dataclass
class LoadReport:
    examples: list[ChatExample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def packaged_dir(expert: str) -> Path:
    return Path(str(resources.files("evo_tr") / "data" / "training" / expert))


def _parse_messages(row: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        raise ValueError("needs a non-empty 'messages' list")
    out = []
    for i, m in enumerate(row["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} needs 'role' in {ROLES} and a string 'content'")
        if not m["content"].strip():
            raise ValueError(f"message {i} has empty content")
        out.append((m["role"], m["content"].strip()))
    roles = [r for r, _ in out if r != "system"]
    if not roles or roles[-1] != "assistant" or roles[0] != "user":
        raise ValueError("must start with a user message and end with an assistant message")
    if any(a == b for a, b in zip(roles, roles[1:])):
        raise ValueError("user and assistant messages must alternate")
    return tuple(out)


def _parse_anchor(row: dict[str, Any]) -> bool:
    anchor = row.get("anchor", False)
    if not isinstance(anchor, bool):
        raise ValueError("'anchor' must be true or false")
    return anchor


def alpaca_to_chat(row: Any) -> dict[str, Any]:
    """`{"instruction", "input", "output"}` → `{"messages": [...]}` (input appended to the instruction)."""
    if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not isinstance(row.get("output"), str):
        raise ValueError("Alpaca rows need string 'instruction' and 'output'")
    prompt = row["instruction"].strip()
    if isinstance(row.get("input"), str) and row["input"].strip():
        prompt += "\n\n" + row["input"].strip()
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"].strip()}]}


def read_jsonl(path: Path, *, alpaca: bool | None = None) -> LoadReport:
    """Every line validated; problems carry their line number. Alpaca rows are detected per line unless forced."""
    if not path.is_file():
        raise EvoError(f"No such training file: {path}", "Give a JSONL file of {\"messages\": [...]} or Alpaca rows.")
    report = LoadReport()
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
            if alpaca or (alpaca is None and isinstance(row, dict) and "instruction" in row):
                row = alpaca_to_chat(row)
            report.examples.append(ChatExample(_parse_messages(row), _parse_anchor(row)))
        except UnicodeDecodeError as exc:
            report.problems.append(f"{path.name}:{number}: not UTF-8 ({exc.reason})")
        except json.JSONDecodeError as exc:
            report.problems.append(f"{path.name}:{number}: not JSON ({exc.msg})")
        except ValueError as exc:
            report.problems.append(f"{path.name}:{number}: {exc}")
    return report


def load_dir(folder: Path) -> LoadReport:
    """All *.jsonl files of a dataset folder, in name order."""
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise EvoError(f"No *.jsonl files in {folder}.", "Put chat-JSONL files there or pass --data FILE.")
    total = LoadReport()
    for f in files:
        part = read_jsonl(f)
        total.examples += part.examples
        total.problems += part.problems
    return total


def load_strict(path: Path) -> list[ChatExample]:
    """Load a file or folder and refuse it if any line is bad (training must not silently drop data)."""
    report = load_dir(path) if path.is_dir() else read_jsonl(path)
    if report.problems:
        shown = "; ".join(report.problems[:5]) + (f"; … {len(report.problems) - 5} more" if len(report.problems) > 5 else "")
        raise EvoError(f"{len(report.problems)} bad training line(s): {shown}", "Fix those lines (see docs: chat-JSONL format).")
    if not report.examples:
        raise EvoError(f"{path} contains no training examples.")
    return report.examples


def _shingles(example: ChatExample) -> frozenset[str]:
    words = _WORDS.findall(normalize(" ".join(c for _, c in example.messages)))
    return frozenset(" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2)))


def clean(examples: list[ChatExample], limits: Limits = Limits()) -> tuple[list[ChatExample], CleanReport]:
    """Drop exact duplicates, near duplicates (word-trigram Jaccard), and too short/long examples; order kept."""
    report = CleanReport()
    kept: list[ChatExample] = []
    seen: set[str] = set()
    shingles: list[frozenset[str]] = []
    for ex in examples:
        if ex.chars < limits.min_chars:
            report.too_short += 1
            continue
        if ex.chars > limits.max_chars:
            report.too_long += 1
            continue
        if ex.key in seen:
            report.exact_duplicates += 1
            continue
        sh = _shingles(ex)
        if any(len(sh & o) / max(1, len(sh | o)) >= limits.near_duplicate_jaccard for o in shingles):
            report.near_duplicates += 1
            continue
        seen.add(ex.key)
        shingles.append(sh)
        kept.append(ex)
    report.kept = len(kept)
    return kept, report


def split(examples: list[ChatExample], valid_fraction: float = VALID_FRACTION) -> tuple[list[ChatExample], list[ChatExample]]:
    """Deterministic: an example's hash decides its side, so adding data never reshuffles the rest."""
    train, valid = [], []
    for ex in examples:
        bucket = int(ex.key[:8], 16) / 0xFFFFFFFF
        (valid if bucket < valid_fraction else train).append(ex)
    if not valid and len(train) > 1:
        valid.append(train.pop())
    return train, valid


def dataset_hash(examples: list[ChatExample]) -> str:
    return hashlib.sha256("\n".join(e.key for e in examples).encode()).hexdigest()
