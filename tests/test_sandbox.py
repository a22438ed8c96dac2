"""The sandbox really limits what model-written code can do (real subprocesses, real limits)."""

from __future__ import annotations

import pytest

from evo_tr.experts.evaluate import extract_code
from evo_tr.sandbox import SandboxLimits, run_python

from .conftest import run_json


def test_ok_code_runs_and_prints():
    result = run_python("import math\nprint(math.factorial(5))")
    assert result.ok and result.stdout.strip() == "120" and result.returncode == 0


def test_failing_assert_is_reported_with_its_message():
    result = run_python("assert sorted([3, 1]) == [3, 1], 'not sorted'")
    assert not result.ok and result.error_tail == "AssertionError: not sorted"


def test_infinite_loop_is_killed_at_the_time_limit():
    result = run_python("while True:\n    pass", SandboxLimits(timeout_s=1.5))
    assert result.timed_out and not result.ok and result.seconds < 10 and result.error_tail == "timeout"


def test_memory_limit_stops_a_huge_allocation():
    result = run_python("x = bytearray(3 * 1024 ** 3)", SandboxLimits(memory_mb=256))
    assert not result.ok and "MemoryError" in result.error_tail


def test_network_is_unavailable():
    for code in (
        "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)",
        "import socket; s = socket.socket(); s.connect(('127.0.0.1', 9))",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=1)",
    ):
        result = run_python(code)
        assert not result.ok and "network access is disabled" in result.stderr, code


def test_file_size_limit_and_private_working_directory():
    big = run_python("open('big.bin', 'wb').write(b'x' * (40 * 1024 ** 2))", SandboxLimits(file_mb=8))
    assert not big.ok and "File too large" in big.stderr
    where = run_python("import os; print(os.getcwd())")
    assert "evo-sandbox-" in where.stdout


@pytest.mark.slow  # 25 s; make test keeps `evo eval python` on base + adapter (test_experts.py)
def test_eval_python_cli_runs_humaneval_problems_in_the_sandbox_with_one_or_two_workers():
    out = run_json("eval", "python", "--adapter", "none", "--limit", "3", "--json", timeout=600)
    assert out["benchmark"] == "humaneval" and out["problems"] == 3 and out["workers"] == 1
    assert 0.0 <= out["pass_at_1_base"] <= 1.0 and out["passed_base"] + len(out["failures_base"]) == 3
    pooled = run_json("eval", "python", "--adapter", "none", "--limit", "3", "--workers", "2", "--json", timeout=600)
    assert pooled["workers"] == 2  # greedy decoding: the same answers in every worker process
    assert (pooled["passed_base"], pooled["failures_base"]) == (out["passed_base"], out["failures_base"])


PROMPT = 'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n'
CHECK = "\n\nassert add(2, 3) == 5\n"


def test_extract_code_keeps_a_cut_off_answer_whose_function_is_complete():
    answer = "```python\nimport math\n\ndef add(a, b):\n    return a + b\n\n# Test cases\nprint(add(1, 2))  # 3\nprint(add(4,"
    code = extract_code(answer, PROMPT, "add")
    assert "```" not in code and "print" not in code and "import math" in code
    assert run_python(code + CHECK).ok


def test_extract_code_drops_the_models_own_wrong_demo_asserts():
    answer = "```python\nLIMIT = 10\n\ndef add(a, b):\n    return a + b\n\nresult = add(1, 1)\nassert result == 3\nif __name__ == '__main__':\n    print(add(1, 2))\n```\nDone."
    code = extract_code(answer, PROMPT, "add")
    assert "LIMIT = 10" in code and "result" not in code and "__main__" not in code
    assert run_python(code + CHECK).ok


def test_extract_code_prepends_the_prompt_to_a_bare_body_and_reports_unparsable_text():
    assert run_python(extract_code("```python\n    return a + b\n```", PROMPT, "add") + CHECK).ok
    broken = extract_code("def add(a, b) return a + b", "", "add")
    assert "SyntaxError" in run_python(broken + CHECK).error_tail
