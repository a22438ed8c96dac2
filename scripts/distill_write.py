"""Sample the default base model's own solution for every task in scripts/python_tasks.py (rejection sampling).

For each task the served base model answers the English request (plus the name our asserts call); the first
try is greedy, later tries sample at temperature 0.8 with a fixed seed each. The first code block is kept
only if the task's asserts pass in the sandbox. Kept code goes to scripts/distilled_write.json (task name →
code, plus how many tries each task has had, so a rerun with more --tries resumes), which
scripts/build_training_data.py uses for the "write" answers. Training on the model's own verified code
teaches the expert our answer format and Turkish explanations without pulling its coding style towards
our terser hand-written solutions (the first python_coder adapter trained on those lost HumanEval points).
Run: .venv/bin/python scripts/distill_write.py --tries 4   (needs the default model; ~20 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from python_tasks import T  # noqa: E402

from evo_tr.sandbox import run_python  # noqa: E402

OUT = ROOT / "scripts" / "distilled_write.json"
TEMPERATURE = 0.8
_worker: dict = {}


def _load() -> None:
    from evo_tr.config import load_settings
    from evo_tr.engine import load_engine

    _worker["settings"] = settings = load_settings()
    _worker["engine"] = load_engine(settings)


def solve(t: dict, first_try: int, tries: int) -> tuple[str, str | None, int]:
    """(task, verified code or None, tries used so far) for one task, in a worker with its own engine."""
    from evo_tr.engine import Message, generation_config
    from evo_tr.experts.evaluate import CODE_BLOCK, first_code_block

    settings, engine = _worker["settings"], _worker["engine"]
    messages = [Message("system", settings.prompt_for("python_coder")),
                Message("user", f"{t['en']} Call it `{t['name']}`.")]  # the asserts need our name; training rows keep the plain request
    for k in range(first_try, tries):
        config = replace(generation_config(settings), temperature=0.0 if k == 0 else TEMPERATURE, seed=k, max_tokens=500)
        blocks = CODE_BLOCK.findall(first_code_block(engine.chat_stream(messages, config)))
        code = blocks[0].strip("\n") if blocks else ""
        defined = f"def {t['name']}" in code or f"class {t['name']}" in code
        if defined and run_python(code + "\n\n" + t["tests"]).ok:
            return t["name"], code, k + 1
    return t["name"], None, tries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=4, help="samples per task at most (the first is greedy)")
    parser.add_argument("--workers", type=int, default=2, help="processes, each with its own engine")
    args = parser.parse_args()
    state = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {"kept": {}, "tries": {}}
    todo = [t for t in T if t["name"] not in state["kept"] and state["tries"].get(t["name"], 0) < args.tries]
    with ProcessPoolExecutor(args.workers, initializer=_load) as pool:
        futures = [pool.submit(solve, t, state["tries"].get(t["name"], 0), args.tries) for t in todo]
        for n, future in enumerate(as_completed(futures), start=1):
            name, code, used = future.result()
            state["tries"][name] = used
            if code:
                state["kept"][name] = code
            print(f"{n}/{len(todo)} {name}: {'kept after ' + str(used) if code else 'rejected'}", flush=True)
            OUT.write_text(json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"kept {len(state['kept'])} of {len(T)}")


if __name__ == "__main__":
    main()
