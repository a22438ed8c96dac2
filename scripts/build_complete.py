"""Build src/evo_tr/data/training/python_coder/complete.jsonl: "complete this stub" examples.

Each of our hand-written tasks becomes a function stub (signature + docstring with the task's own
request and doctest examples taken from its asserts). The answer is the whole function, docstring kept.
Its body comes from the served base model itself (greedy), kept only if the task's asserts pass in the
sandbox (rejection sampling); otherwise our hand-written solution is used. Training on the model's
own verified style keeps the adapter from drifting away from what the base already does well.
Run: .venv/bin/python scripts/build_complete.py   (needs the default model; about 10 minutes on 2 cores)
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from python_tasks import T  # noqa: E402

from evo_tr.sandbox import run_python  # noqa: E402

OUT = ROOT / "src" / "evo_tr" / "data" / "training" / "python_coder" / "complete.jsonl"
PROMPTS = {
    "en": "Complete this Python function so that it does what its docstring says. Give the whole function in one code block.\n\n```python\n{stub}\n```",
    "tr": "Bu Python fonksiyonunu docstring'inde yazdığı gibi çalışacak şekilde tamamla. Fonksiyonun tamamını tek bir kod bloğunda ver.\n\n```python\n{stub}\n```",
}
NOTE = {"en": "The function keeps its docstring; the examples in it hold.",
        "tr": "Fonksiyon docstring'ini koruyor; içindeki örnekler doğru çalışıyor."}


def doctests(tests: str, limit: int = 3) -> list[str]:
    """`assert f(x) == y` lines as doctest pairs."""
    out = []
    for node in ast.parse(tests).body:
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and isinstance(node.test.ops[0], ast.Eq):
            left, right = ast.unparse(node.test.left), ast.unparse(node.test.comparators[0])
            if isinstance(node.test.left, ast.Call) and "\n" not in left + right and len(left + right) < 100:
                out.append(f">>> {left}\n{right}")
    return out[:limit]


def stub_of(code: str, name: str, request: str, tests: str) -> tuple[str, str, str] | None:
    """(prefix, stub, docstring) for the task's function, or None when it is not a plain top-level function."""
    tree = ast.parse(code)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not funcs or any(isinstance(n, ast.ClassDef) for n in tree.body):
        return None
    fn = funcs[0]
    lines = code.splitlines()
    prefix = "\n".join(lines[: fn.lineno - 1 - len(fn.decorator_list)]).rstrip()
    header = "\n".join(lines[fn.lineno - 1 - len(fn.decorator_list): fn.body[0].lineno - 1])
    examples = doctests(tests)
    doc_body = request + ("\n\n" + "\n".join(examples) if examples else "")
    doc = '    """' + "\n".join(("    " + ln) if ln and k else ln for k, ln in enumerate(doc_body.split("\n"))) + '\n    """'
    stub = (prefix + "\n\n\n" if prefix else "") + header + "\n" + doc
    return prefix, stub, doc


def with_doc(code: str, name: str, doc: str) -> str:
    """Hand-written solution with the stub's docstring inserted."""
    tree = ast.parse(code)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = code.splitlines()
    first = fn.body[0]
    at = first.lineno - 1
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    rest = first.end_lineno if has_doc else at  # an existing docstring is replaced, not stacked
    return "\n".join(lines[:at] + doc.splitlines() + lines[rest:])


def request_of(t: dict, lang: str) -> str:
    text = t[lang].rstrip(".")
    for lead in ("Write a function that ", "Write a function "):
        if text.startswith(lead):
            text = text[len(lead):]
            return text[0].upper() + text[1:] + "."
    return text + "."


def main() -> None:
    from evo_tr.config import load_settings
    from evo_tr.engine import Message, generation_config, load_engine
    from evo_tr.experts.evaluate import extract_code, first_code_block

    settings = load_settings()
    engine = load_engine(settings)
    config = replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=500)
    rows, own = [], 0
    for i, t in enumerate(T):
        lang = "en" if i % 2 == 0 else "tr"
        parts = stub_of(t["code"], t["name"], request_of(t, "en"), t["tests"])  # docstrings are English, as in most code
        if parts is None:
            continue
        prefix, stub, doc = parts
        prompt = PROMPTS[lang].format(stub=stub)
        ask = PROMPTS["en"].format(stub=stub)  # the base model echoes the stub for Turkish instructions: sample in English
        answer = first_code_block(engine.chat_stream([Message("system", settings.system_prompt), Message("user", ask)], config))
        code = extract_code(answer, stub + "\n", t["name"]).strip("\n")
        if prefix and prefix not in code:
            code = prefix + "\n\n\n" + code
        source = "model"
        try:
            if doc.strip().splitlines()[0].strip() not in code:
                code = with_doc(code, t["name"], doc)
            passed = run_python(code + "\n\n" + t["tests"]).ok
        except (SyntaxError, StopIteration):
            passed = False
        if not passed:
            code, source = with_doc(t["code"], t["name"], doc), "hand"
        own += source == "model"
        program = code + "\n\n" + t["tests"]
        assert run_python(program).ok, t["name"]
        rows.append({"messages": [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": f"```python\n{code}\n```\n\n{NOTE[lang]}"}],
                     "check": program, "kind": "complete", "lang": lang, "task": t["name"], "answer_source": source})
        print(f"{i + 1}/{len(T)} {t['name']}: {source}", flush=True)
    with open(OUT, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"complete: {len(rows)} ({own} model-written and verified, {len(rows) - own} hand-written)")


if __name__ == "__main__":
    main()
