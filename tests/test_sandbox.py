"""The sandbox really limits what model-written code can do (real subprocesses, real limits)."""

from __future__ import annotations

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


def test_eval_python_cli_runs_humaneval_problems_in_the_sandbox():
    out = run_json("eval", "python", "--adapter", "none", "--limit", "2", "--json", timeout=600)
    assert out["benchmark"] == "humaneval" and out["problems"] == 2
    assert 0.0 <= out["pass_at_1_base"] <= 1.0 and out["passed_base"] + len(out["failures_base"]) == 2
