"""The intent dataset: JSONL lines {"text", "intent"}, validated with line numbers, split deterministically."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from evo_tr.errors import EvoError

PACKAGED = "data/intents/intent_dataset.jsonl"
VALID_FRACTION = 0.2
T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


def packaged_path() -> Path:
    return Path(str(resources.files("evo_tr").joinpath(PACKAGED)))


def read_rows(path: Path, parse: Callable[[Any], T], what: str = "examples") -> list[T]:
    """Every non-empty line of a JSONL file through `parse` (which raises ValueError saying what is wrong); all
    problems are reported together, each with its line number, and nothing is returned from a file that has any."""
    rows, problems = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"line {number}: not valid UTF-8 JSON ({exc})")
            continue
        try:
            rows.append(parse(row))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
        raise EvoError(f"{path}: {len(problems)} bad line(s): {shown}", "Fix those lines and run again.")
    if not rows:
        raise EvoError(f"{path} contains no {what}.")
    return rows


def load_examples(path: Path | None = None, intents: list[str] | None = None) -> list[Example]:
    """Read and validate a JSONL file; every problem is reported with its line number."""
    path = path or packaged_path()
    if not path.is_file():
        raise EvoError(f"No such dataset: {path}", "Give a JSONL file with {\"text\": ..., \"intent\": ...} lines.")

    def parse(row: Any) -> Example:
        text, intent = (row.get("text"), row.get("intent")) if isinstance(row, dict) else (None, None)
        if not isinstance(text, str) or not text.strip() or not isinstance(intent, str):
            raise ValueError("needs non-empty string fields 'text' and 'intent'")
        if intents is not None and intent not in intents:
            raise ValueError(f"unknown intent '{intent}' (known: {', '.join(intents)})")
        return Example(text, intent)

    return read_rows(path, parse)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rank(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split(examples: list[Example], valid_fraction: float = VALID_FRACTION) -> tuple[list[Example], list[Example]]:
    """Stratified and deterministic: within each intent, order by a hash of the text, take the first 20%."""
    train, valid = [], []
    for intent in sorted({e.intent for e in examples}):
        group = sorted((e for e in examples if e.intent == intent), key=lambda e: _rank(e.text))
        n_valid = max(1, round(len(group) * valid_fraction))
        valid += group[:n_valid]
        train += group[n_valid:]
    return train, valid
