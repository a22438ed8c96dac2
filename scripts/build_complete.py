"""Build src/evo_tr/data/training/python_coder/complete.jsonl: "complete this stub" examples.

Each of our hand-written tasks becomes a function stub (signature + docstring with the task's own request
and doctest examples taken from its asserts), asked for in English and in Turkish. The answer is the whole function, docstring kept.
It is the served base model's own completion from scripts/distilled.json (scripts/distill.py samples it
with the English request, since the base model echoes the stub for Turkish ones, and keeps it only if the
task's asserts pass in the sandbox); a stub the model never completed gets no row. Training on the
model's own verified code keeps the adapter from drifting away from what the base already does well.
Run: .venv/bin/python scripts/build_complete.py   (after scripts/distill.py)
"""

from __future__ import annotations

import ast
import json
import sys
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
# Stubs whose docstring is Turkish too, as a Turkish user (and Turkish HumanEval) writes them, asked in the ways
# people ask; the target is still the code the base wrote for the English twin, with the Turkish docstring kept
# (cross-lingual self-distillation). The form is picked by the task's position, so each form covers a third.
TR_DOC_PROMPTS = (
    "Şu fonksiyonu tamamlar mısın? Docstring'deki örnekler çalışsın.\n\n```python\n{stub}\n```",
    "```python\n{stub}\n```\n\nBu fonksiyonun gövdesini yaz, fonksiyonun tamamını ver.",
    "Aşağıdaki fonksiyonu açıklamasına uygun şekilde doldur:\n\n```python\n{stub}\n```",
)
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
    if lang == "tr":  # a docstring describes the function: "... sayan bir fonksiyon yaz" -> "... sayan fonksiyon"
        return text.replace(" bir fonksiyon yaz", " fonksiyon") + "."
    for lead in ("Write a function that ", "Write a function "):
        if text.startswith(lead):
            text = text[len(lead):]
            return text[0].upper() + text[1:] + "."
    return text + "."


def main() -> None:
    from build_training_data import block, distilled, example, humaneval_names

    model = distilled(humaneval_names()).get("complete", {})
    rows = []
    for t in T:
        parts = stub_of(t["code"], t["name"], request_of(t, "en"), t["tests"])  # docstrings are English, as in most code
        code = model.get(t["name"])
        if parts is None or code is None:
            continue
        program = code + "\n\n" + t["tests"]
        assert run_python(program).ok, t["name"]
        rows += [example(PROMPTS[lang].format(stub=parts[1]), f"{block(code)}\n\n{NOTE[lang]}", program, "complete", lang, t["name"],
                         answer_source="model")
                 for lang in ("en", "tr")]
        tr_parts = stub_of(t["code"], t["name"], request_of(t, "tr"), t["tests"])
        tr_code = with_doc(code, t["name"], tr_parts[2])  # the English twin's code, its docstring now the Turkish one
        tr_program = tr_code + "\n\n" + t["tests"]
        assert run_python(tr_program).ok, t["name"]
        form = TR_DOC_PROMPTS[len([r for r in rows if r["lang"] == "tr"]) % len(TR_DOC_PROMPTS)]
        rows.append(example(form.format(stub=tr_parts[1]), f"{block(tr_code)}\n\n{NOTE['tr']}", tr_program, "complete", "tr", t["name"],
                            answer_source="model", docstring="tr"))
    with open(OUT, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"complete: {len(rows)} (all model-written and verified)")


if __name__ == "__main__":
    main()
