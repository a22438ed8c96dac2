"""Seed the base's HumanEval baseline cache (src/evo_tr/experts/baseline.py) from an earlier `evo eval python --json`.

For a run made with the same model file, prompts, decoding, sandbox limits and harness before the cache existed (the
issue-26 gap run, build/he_gap_2026-12-01.json: base on English and Turkish HumanEval). Only missing entries are
added; every later use of the cache reruns `experts.eval_baseline_recheck` of them and drops the whole entry if one
disagrees, so a wrong seed cannot decide a gate.
Run: .venv/bin/python scripts/seed_baseline.py build/he_gap_2026-12-01.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from evo_tr.config import load_settings  # noqa: E402
from evo_tr.experts.evaluate import DATASETS, _open_baseline, load_problem_set, outcomes  # noqa: E402
from evo_tr.sandbox import SandboxLimits  # noqa: E402


def main() -> None:
    result = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    settings = load_settings()
    for run in result.get("sets", [result]):
        pset = load_problem_set(run["benchmark"] if run["benchmark"] in DATASETS else run["data"], None)
        passed = outcomes(run, "base")
        cache = _open_baseline(settings, run["model"], run["instruction_lang"], SandboxLimits(timeout_s=10.0))
        errors = {f["task_id"]: f["error"] for f in run["failures_base"]}
        added = 0
        for problem in pset.problems:
            if problem["task_id"] in passed and cache.get(problem) is None:
                cache.put(problem, passed[problem["task_id"]], errors.get(problem["task_id"], ""))
                added += 1
        cache.save()
        print(f"{run['benchmark']} ({run['instruction_lang']}): {added} base outcomes added to {cache.path}")


if __name__ == "__main__":
    main()
