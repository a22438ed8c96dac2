"""Run untrusted (model-written) Python in a subprocess with time, memory, file and network limits."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
OUTPUT_LIMIT = 20_000  # characters of stdout/stderr kept

# Runs inside the child before the untrusted code: even where a network namespace cannot be created,
# sockets cannot be opened from Python.
PRELUDE = """
import socket as _s
def _no_network(*a, **k):
    raise OSError("network access is disabled in the EVO-TR sandbox")
for _name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
    setattr(_s.socket, _name, _no_network)
for _name in ("create_connection", "getaddrinfo", "create_server"):
    setattr(_s, _name, _no_network)
del _s, _name
"""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 512
    file_mb: int = 16
    open_files: int = 64


@dataclass(frozen=True)
class SandboxResult:
    ok: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    network_isolated: bool

    @property
    def error_tail(self) -> str:
        """The last line of the traceback: what a user or a report wants to see."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return "timeout" if self.timed_out else (lines[-1] if lines else f"exit code {self.returncode}")


def _unshare_network() -> bool:
    """A private network namespace (no interfaces but loopback, which is down): works as root or with user namespaces."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) == 0:
            return True
        return libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    except OSError:
        return False


def _limit(limits: SandboxLimits, status_fd: int):
    def apply() -> None:
        os.setsid()
        isolated = _unshare_network()
        os.write(status_fd, b"1" if isolated else b"0")
        cpu = int(limits.timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), stdin: str = "") -> SandboxResult:
    """Execute `code` with `python -I` in a fresh temporary directory; never raises for what the code does."""
    with tempfile.TemporaryDirectory(prefix="evo-sandbox-") as tmp:
        script = Path(tmp) / "main.py"
        script.write_text(PRELUDE + "\n" + code, encoding="utf-8")
        read_fd, write_fd = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-I", str(script)], cwd=tmp, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, preexec_fn=_limit(limits, write_fd), pass_fds=(write_fd,),
        )
        os.close(write_fd)
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
        isolated = os.read(read_fd, 1) == b"1"
        os.close(read_fd)
        seconds = time.perf_counter() - start
    return SandboxResult(
        ok=not timed_out and proc.returncode == 0,
        returncode=proc.returncode,
        stdout=out[-OUTPUT_LIMIT:],
        stderr=err[-OUTPUT_LIMIT:],
        timed_out=timed_out,
        seconds=round(seconds, 3),
        network_isolated=isolated,
    )
