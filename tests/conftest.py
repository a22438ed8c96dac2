"""Shared fixtures: an isolated EVO_HOME per test session and the real test model on llama.cpp."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo_tr.config import TEST_MODEL, load_settings
from evo_tr.engine import load_engine

MODEL = os.environ.get("EVO_TEST_MODEL", TEST_MODEL)
EVO = [sys.executable, "-m", "evo_tr"]


@pytest.fixture(scope="session")
def evo_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evo-home")


@pytest.fixture(autouse=True)
def _isolated_env(evo_home: Path, monkeypatch, tmp_path: Path) -> None:
    """Every test sees its own config location and the shared test home, never the user's."""
    monkeypatch.setenv("EVO_HOME", str(evo_home))
    monkeypatch.setenv("EVO_CONFIG", str(tmp_path / "evo.toml"))
    monkeypatch.setenv("EVO_MODEL", MODEL)
    for key in list(os.environ):
        if key.startswith("EVO_ENGINE") or key.startswith("EVO_GENERATION") or key in ("HF_TOKEN", "HF_ENDPOINT"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def engine(evo_home: Path):
    """The real test model loaded once through EVO-TR's llama.cpp engine."""
    os.environ.setdefault("EVO_HOME", str(evo_home))
    settings = load_settings(home=evo_home, model=MODEL)
    eng = load_engine(settings)
    yield eng
    eng.close()


def run_evo(*args: str, input: str | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real `evo` CLI in a subprocess with the test environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*EVO, *args], input=input, capture_output=True, text=True, env=full_env, timeout=timeout)


def run_json(*args: str, **kwargs) -> dict | list:
    proc = run_evo(*args, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """A real `chroma run` server on loopback, waited for until it listens."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the chromadb package installs the `chroma` command"
    proc = subprocess.Popen([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    pytest.fail("chroma run did not start listening within 60 s")


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    proc = start_chroma(tmp_path / "server", port)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download: `make test` installs chromium with apt)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "make test installs Debian's chromium (apt) when it is missing"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])  # root in CI: Chromium's own sandbox needs a user
        yield b
        b.close()


# Tables the campaigns print at the end of the run (issue 27: every README figure comes from such a run). A row is
# attached to the running test's report (user_properties), so it reaches the main process under pytest-xdist too.
_TABLES: dict[str, list[dict]] = {}
_CURRENT: list = []


def report_row(title: str, row: dict) -> None:
    if _CURRENT:
        _CURRENT[-1].user_properties.append(("evo_table_row", (title, row)))
    else:
        _TABLES.setdefault(title, []).append(row)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _CURRENT.append(item)
    try:
        yield
    finally:
        _CURRENT.remove(item)


def pytest_runtest_logreport(report) -> None:
    if report.when != "teardown":  # the teardown report carries every row the test and its fixtures added
        return
    for name, value in report.user_properties:
        if name == "evo_table_row":
            title, row = value
            _TABLES.setdefault(title, []).append(row)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell whether its test passed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_terminal_summary(terminalreporter) -> None:
    for title, rows in _TABLES.items():
        terminalreporter.section(f"{title} ({len(rows)})")
        keys = list(rows[0])
        widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
        terminalreporter.write_line("  ".join(k.ljust(widths[k]) for k in keys))
        for r in rows:
            terminalreporter.write_line("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))
