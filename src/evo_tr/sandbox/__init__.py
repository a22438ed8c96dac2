"""Run untrusted (model-written) Python in a subprocess that holds: time, memory, file, process and network limits,
a filesystem view where only its temp dir is writable, no programs to execute, and no root.

How the child is confined (`child.py` does the steps inside it; `isolation()` says which ones this system has):
- **Unprivileged user.** Started as root (as CI and many containers run), the code runs as `nobody`. The
  interpreter must be readable by that user: where `sys.executable`'s standard library is not (a pyenv under
  /root, as on this machine), the system's `python3` of the same major version runs the code instead.
- **Landlock** (Linux >= 5.13; no privileges needed, so it also confines a normal user): read-only access to
  /usr, /lib*, /bin, /sbin, /etc and the interpreter's standard library; read-write to the temp dir only; no
  execve (so no `os.system`, `subprocess` or shells); no TCP (ABI >= 4); no signals or abstract sockets outside
  (ABI >= 6). The user's data (EVO_HOME, ~/.ssh, the project) is not readable.
- **A PID namespace** when root (util-linux `unshare --pid --fork --kill-child`): whatever the code forks, even a
  daemon that calls setsid, dies with it. Elsewhere the process group is killed.
- **rlimits**: CPU time, address space, file size, open files, processes (threads count) and no core files.
- **Output** goes to files outside the temp dir, capped by the file-size limit, so a flood of output can neither
  fill the parent's memory nor be read back past `OUTPUT_LIMIT`.
- **Network**: a private network namespace, Landlock's TCP rules, and Python socket stubs as the last line.
Where a step is not available the others still apply; `evo doctor` reports what is active.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_LIMIT = 20_000  # characters of stdout/stderr kept
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
UNPRIVILEGED_USER = "nobody"
_CHILD = Path(__file__).with_name("child.py")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 512
    file_mb: int = 16
    open_files: int = 64
    processes: int = 32  # tasks (processes and threads) the code may have at once


@dataclass(frozen=True)
class SandboxResult:
    ok: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: dict[str, Any] = field(default_factory=dict)

    @property
    def network_isolated(self) -> bool:
        return str(self.isolation.get("network", "")).startswith("namespace")

    @property
    def error_tail(self) -> str:
        """The last line of the traceback: what a user or a report wants to see."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return "timeout" if self.timed_out else (lines[-1] if lines else f"exit code {self.returncode}")


@dataclass(frozen=True)
class Plan:
    """How this process will start sandboxed code (computed once: it only depends on the system)."""

    python: str
    stdlib: tuple[str, ...]
    drop_to: tuple[int, int] | None
    pid_namespace: list[str]  # the wrapper command, empty when unavailable
    version: str = ""  # the interpreter's sys.version
    note: str = ""


def _traversable_by_others(path: str) -> bool:
    """Every directory from / down to `path` can be entered by any user, and `path` read (mode bits; no ACLs)."""
    p = Path(path).resolve()
    for part in [*reversed(p.parents), p]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH or (part == p and not mode & stat.S_IROTH):
            return False
    return True


def _describe(python: str) -> tuple[tuple[str, ...], str]:
    """An interpreter's standard-library directories and its sys.version (one subprocess for another interpreter)."""
    if python == sys.executable:
        paths = sysconfig.get_paths()
        return tuple(dict.fromkeys(os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib"))), sys.version
    out = subprocess.run([python, "-I", "-c", "import sysconfig as s, os, sys; p = s.get_paths(); "
                          "print(os.path.realpath(p['stdlib'])); print(os.path.realpath(p['platstdlib'])); print(sys.version)"],
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    return (tuple(dict.fromkeys(lines[:2])), lines[2]) if out.returncode == 0 and len(lines) >= 3 else ((), "")


@functools.lru_cache(maxsize=1)
def _child_source() -> str:
    return _CHILD.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def plan() -> Plan:
    python, note = sys.executable, ""
    stdlib, version = _describe(python)
    drop_to = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            drop_to = (user.pw_uid, user.pw_gid)
        except KeyError:
            note = f"no user {UNPRIVILEGED_USER!r}: code runs as root (inside Landlock)"
    if drop_to and not all(_traversable_by_others(p) for p in stdlib):
        major = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (f"/usr/bin/{major}", f"/usr/local/bin/{major}", "/usr/bin/python3"):
            if os.access(candidate, os.X_OK) and _traversable_by_others(candidate):
                lib, lib_version = _describe(candidate)
                if lib and all(_traversable_by_others(p) for p in lib):
                    python, stdlib, version, note = candidate, lib, lib_version, f"{sys.executable}'s standard library is not readable by {UNPRIVILEGED_USER}: code runs with {candidate}"
                    break
        else:
            drop_to, note = None, f"no Python readable by {UNPRIVILEGED_USER}: code runs as root (inside Landlock)"
    wrapper = shutil.which("unshare")
    pid_ns = [wrapper, "--pid", "--fork", "--kill-child"] if os.geteuid() == 0 and wrapper else []
    if pid_ns:  # some containers refuse new PID namespaces even to root: then the process group is killed instead
        try:
            ok = subprocess.run([*pid_ns, python, "-I", "-c", "pass"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        pid_ns = pid_ns if ok else []
    return Plan(python, stdlib, drop_to, pid_ns, version, note)


def _count_own_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            n += entry.stat().st_uid == uid
        except OSError:
            pass
    return n


def _limit(limits: SandboxLimits):
    def apply() -> None:
        os.setsid()
        cpu = int(limits.timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 4 * OUTPUT_LIMIT))
        return f.read().decode("utf-8", errors="replace")[-OUTPUT_LIMIT:]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), stdin: str = "") -> SandboxResult:
    """Execute `code` in a fresh temporary directory under the confinement above; never raises for what the code does."""
    how = plan()
    with tempfile.TemporaryDirectory(prefix="evo-sandbox-") as tmp, tempfile.TemporaryDirectory(prefix="evo-sandbox-io-") as io:
        work = Path(tmp)
        if how.drop_to:
            os.chown(work, *how.drop_to)
        status_r, status_w = os.pipe()
        nproc = limits.processes if how.drop_to else (_count_own_processes() + limits.processes if os.geteuid() else 0)
        cfg = {"status_fd": status_w, "nproc": nproc, "landlock": True, "read": [*SYSTEM_READ, *how.stdlib],
               "devices": list(DEVICES), "work": str(work), "drop_to": list(how.drop_to) if how.drop_to else None}
        script = work / "main.py"
        script.write_text(_child_source() + f"\n_evo_enter({cfg!r})\ndel _evo_enter\n" + code,
                          encoding="utf-8")
        (Path(io) / "stdin").write_text(stdin, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
               "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        out_path, err_path = Path(io) / "stdout", Path(io) / "stderr"
        start = time.perf_counter()
        with open(Path(io) / "stdin", "rb") as fin, out_path.open("wb") as fout, err_path.open("wb") as ferr:
            proc = subprocess.Popen([*how.pid_namespace, how.python, "-I", str(script)], cwd=tmp, env=env, stdin=fin,
                                    stdout=fout, stderr=ferr, preexec_fn=_limit(limits), pass_fds=(status_w,))
        os.close(status_w)
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill(proc)  # also what the code left running in its process group
        proc.wait()
        seconds = time.perf_counter() - start
        with os.fdopen(status_r, "rb") as f:
            raw = f.read()
        try:
            isolation = json.loads(raw) if raw else {"problems": ["the sandbox's entry did not report (the code could not start)"]}
        except ValueError:
            isolation = {"problems": ["unreadable status from the sandbox's entry"]}
        isolation["python"] = how.python
        stdout, stderr = _tail(out_path), _tail(err_path)
    return SandboxResult(
        ok=not timed_out and proc.returncode == 0,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        seconds=round(seconds, 3),
        isolation=isolation,
    )


def isolation() -> dict[str, Any]:
    """What confines sandboxed code on this system, measured by running a probe through the real sandbox."""
    result = run_python("print('ok')")
    iso = {**result.isolation, "works": result.ok and result.stdout.strip() == "ok", "note": plan().note}
    try:
        iso["user_name"] = pwd.getpwuid(int(iso.get("user", -1))).pw_name
    except (KeyError, ValueError):
        iso["user_name"] = str(iso.get("user"))
    return iso


def fingerprint() -> dict[str, Any]:
    """What decides an outcome besides the code and the limits (for caches of results): the interpreter and its version."""
    how = plan()
    return {"python": how.python, "version": how.version}
