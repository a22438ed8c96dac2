"""The base model's HumanEval outcomes, kept between runs and rechecked on every use.

Why: the code gate compares every python_coder candidate with the base on two sets of 164 problems. The base's
side never changes while the model file, the prompts, the decoding and the harness stay the same (greedy decoding;
the base's failures were identical in every paired run so far), yet it costs as much as the candidate's: on this
2-core box about 35 min of the 70 a gate takes. So the base's outcomes are stored per problem under
$EVO_HOME/eval/baseline/, keyed by a fingerprint of everything that decides them, and each later run rechecks
`experts.eval_baseline_recheck` of them (8, chosen by hash, so a different few each time the set changes): if any
recheck disagrees, the whole cache entry is thrown away and the base is run again on every problem, so a stale
baseline can never decide a gate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the harness changes in a way that changes outcomes (prompt building, code extraction, the check program).
HARNESS_VERSION = 2


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


def problem_key(problem: dict[str, Any]) -> str:
    """A problem's identity: its id and every field the harness reads."""
    return _digest({k: problem.get(k) for k in ("task_id", "prompt", "entry_point", "test")})[:24]


@dataclass
class BaselineCache:
    """task key → (passed, error) of the base under one fingerprint (model file, prompts, decoding, sandbox, harness)."""

    path: Path
    outcomes: dict[str, list] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, fingerprint: dict[str, Any]) -> "BaselineCache":
        path = folder / f"{_digest({**fingerprint, 'harness': HARNESS_VERSION})[:32]}.json"
        outcomes: dict[str, list] = {}
        if path.exists():
            try:
                outcomes = json.loads(path.read_text(encoding="utf-8"))["outcomes"]
            except (OSError, ValueError, KeyError, TypeError):  # a damaged cache is only a slower run
                log.warning("baseline cache %s unreadable; the base runs on every problem", path)
        return cls(path, outcomes)

    def get(self, problem: dict[str, Any]) -> tuple[bool, str] | None:
        hit = self.outcomes.get(problem_key(problem))
        return (bool(hit[0]), str(hit[1])) if hit else None

    def put(self, problem: dict[str, Any], passed: bool, error: str) -> None:
        self.outcomes[problem_key(problem)] = [passed, error]

    def clear(self) -> None:
        self.outcomes = {}

    def save(self) -> None:
        """Atomically (a run killed midway leaves the previous file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"harness": HARNESS_VERSION, "outcomes": self.outcomes}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def recheck_sample(problems: list[dict[str, Any]], cache: BaselineCache, n: int) -> set[str]:
    """Up to `n` cached problems (task ids) to run again, picked by hash and alternating between cached passes and
    cached failures (Turkish HumanEval's base passes 14 of 164: a sample by hash alone would recheck only failures)."""
    sides: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for p in sorted(problems, key=problem_key):
        hit = cache.get(p)
        if hit is not None:
            sides[hit[0]].append(p)
    picked: list[str] = []
    while len(picked) < n and (sides[True] or sides[False]):
        for side in (True, False):
            if sides[side] and len(picked) < n:
                picked.append(sides[side].pop(0)["task_id"])
    return set(picked)


@dataclass(frozen=True)
class BaselineReport:
    """What the cache did in one run (reported in `evo eval python --json` as `base_cache`)."""

    file: str
    reused: int  # base outcomes taken from the cache, not run
    rechecked: int
    agreed: int
    discarded: bool  # a recheck disagreed: the cache was dropped and the base ran on every problem

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
