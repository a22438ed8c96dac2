"""Sample the default base model's own, sandbox-verified code for every code answer in the python_coder set.

Rejection sampling (self-distillation): for each task in scripts/python_tasks.py and each kind of code
answer (write a function, complete a stub, fix a bug, write asserts) the served base model answers the
request with the python_coder system prompt; the first try is greedy, later tries sample at temperature
0.8 with a fixed seed each. A code block is kept only if the task's asserts pass in the sandbox (for
"tests": those of the model's asserts that hold for our reference solution, at least two). scripts/build_training_data.py and
scripts/build_complete.py then use only these answers as code targets, so training never pulls the
expert towards code the base model would not write itself (adapters trained on our terser hand-written
solutions lost HumanEval points: 54 and 21/40 vs base 71 and 26/40).
Output: scripts/distilled.json {"kept": {kind: {task: code}}, "tries": {kind: {task: n}}}; a rerun with a
higher --tries resumes where the last one stopped.
The stored file holds up to 10 tries for write/complete/fix and 3 for tests (about an hour on 2 cores);
scripts/build_training_data.py uses only answers within its MAX_TRY caps (now: greedy answers only):
  .venv/bin/python scripts/distill.py --tries 10 --kinds write,complete,fix
  .venv/bin/python scripts/distill.py --tries 3 --kinds tests
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from build_complete import PROMPTS, request_of, stub_of, with_doc  # noqa: E402
from build_training_data import FIX_ASK, TESTS_ASK, block, traceback_of  # noqa: E402
from python_tasks import T  # noqa: E402

from evo_tr.sandbox import run_python  # noqa: E402

OUT = ROOT / "scripts" / "distilled.json"
KINDS = ("complete", "fix", "write", "tests")
TEMPERATURE = 0.8
MAX_TOKENS = 500
_worker: dict = {}


def fix_prompt(t: dict) -> str:
    """The English bug-fix request, traceback really produced by running the buggy code."""
    return FIX_ASK["en"].format(bug=block(t["bug"]), tb=traceback_of(t["bug"], t["tests"]))


def tests_prompt(t: dict) -> str:
    return TESTS_ASK["en"].format(code=block(t["code"]))


def defines(code: str, name: str) -> bool:
    return f"def {name}" in code or f"class {name}" in code


def check_solution(t: dict, code: str) -> str | None:
    """The code if it defines the task's name and passes its asserts."""
    return code if defines(code, t["name"]) and run_python(code + "\n\n" + t["tests"]).ok else None


def check_tests(t: dict, code: str) -> str | None:
    """The model's asserts that hold for our reference solution (each run on its own), if at least two do."""
    try:
        found = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Assert)]
    except SyntaxError:
        return None
    calls = [ast.unparse(n) for n in found if f"{t['name']}(" in ast.unparse(n.test)]
    held = [a for a in dict.fromkeys(calls) if run_python(t["code"] + "\n\n" + a).ok]
    return "\n".join(held) if len(held) >= 2 else None


def check_complete(t: dict, code: str) -> str | None:
    """The completed function with the stub's docstring, if it passes the asserts."""
    prefix, stub, doc = stub_of(t["code"], t["name"], request_of(t, "en"), t["tests"])
    if prefix and prefix not in code:
        code = prefix + "\n\n\n" + code
    try:
        if doc.strip().splitlines()[0].strip() not in code:
            code = with_doc(code, t["name"], doc)
    except (SyntaxError, StopIteration):
        return None
    return check_solution(t, code)


def applies(kind: str, t: dict) -> bool:
    """Whether the task has this kind of answer at all (cheap: no prompt is built, no traceback run)."""
    if kind == "fix":
        return bool(t["bug"])
    if kind == "complete":
        return stub_of(t["code"], t["name"], request_of(t, "en"), t["tests"]) is not None
    return True


def request(kind: str, t: dict) -> tuple[str, Callable[[dict, str], str | None]]:
    """(English user message, checker) for one kind of answer of a task it applies to."""
    if kind == "write":
        return f"{t['en']} Call it `{t['name']}`.", check_solution  # the asserts need our name; training rows keep the plain request
    if kind == "fix":
        return fix_prompt(t), check_solution
    if kind == "tests":
        return tests_prompt(t), check_tests
    return PROMPTS["en"].format(stub=stub_of(t["code"], t["name"], request_of(t, "en"), t["tests"])[1]), check_complete


def _load() -> None:
    from evo_tr.config import load_settings
    from evo_tr.engine import load_engine

    _worker["settings"] = settings = load_settings()
    _worker["engine"] = load_engine(settings)


def solve(kind: str, t: dict, first_try: int, tries: int) -> tuple[str, str, str | None, int]:
    """(kind, task, verified code or None, tries used so far), in a worker with its own engine."""
    from evo_tr.engine import Message, generation_config
    from evo_tr.experts.evaluate import CODE_BLOCK, extract_code, first_code_block

    settings, engine = _worker["settings"], _worker["engine"]
    user, check = request(kind, t)
    messages = [Message("system", settings.prompt_for("python_coder")), Message("user", user)]
    for k in range(first_try, tries):
        config = replace(generation_config(settings), temperature=0.0 if k == 0 else TEMPERATURE, seed=k, max_tokens=MAX_TOKENS)
        answer = first_code_block(engine.chat_stream(messages, config))
        if kind == "complete":
            code = extract_code(answer, "", t["name"])
        else:
            blocks = CODE_BLOCK.findall(answer)
            code = blocks[0] if blocks else ""
        kept = check(t, code.strip("\n")) if code.strip() else None
        if kept:
            return kind, t["name"], kept, k + 1
    return kind, t["name"], None, tries


def load_state() -> dict:
    state = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    for key in ("kept", "tries"):
        state.setdefault(key, {})
        for kind in KINDS:
            state[key].setdefault(kind, {})
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=4, help="samples per answer at most (the first is greedy)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to sample, in this order")
    parser.add_argument("--workers", type=int, default=2, help="processes, each with its own engine")
    args = parser.parse_args()
    state = load_state()
    todo = [(kind, t) for kind in args.kinds.split(",") for t in T
            if applies(kind, t) and t["name"] not in state["kept"][kind] and state["tries"][kind].get(t["name"], 0) < args.tries]
    with ProcessPoolExecutor(args.workers, initializer=_load) as pool:
        futures = [pool.submit(solve, kind, t, state["tries"][kind].get(t["name"], 0), args.tries) for kind, t in todo]
        for n, future in enumerate(as_completed(futures), start=1):
            kind, name, code, used = future.result()
            state["tries"][kind][name] = used
            if code:
                state["kept"][kind][name] = code
            print(f"{n}/{len(todo)} {kind} {name}: {'kept after ' + str(used) if code else 'rejected'}", flush=True)
            OUT.write_text(json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for kind in KINDS:
        print(f"{kind}: kept {len(state['kept'][kind])} of {sum(applies(kind, t) for t in T)}")


if __name__ == "__main__":
    main()
