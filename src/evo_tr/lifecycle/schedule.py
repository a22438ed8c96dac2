"""`evo schedule`: run `evo night` every night via a user crontab, a systemd user timer, or launchd (macOS)."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from evo_tr.errors import EvoError

CRON_MARKER = "# evo-tr night"
SYSTEMD_NAME = "evo-night"
LAUNCHD_LABEL = "com.evotr.night-analysis"
KINDS = ("cron", "systemd", "launchd")


@dataclass(frozen=True)
class Plan:
    """What installing the schedule writes: files (path → text) or a crontab line, plus the command it runs."""

    kind: str
    hour: int
    minute: int
    command: list[str]
    files: dict[Path, str]
    cron_line: str = ""


def parse_at(at: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in at.split(":"))
        if 0 <= hour < 24 and 0 <= minute < 60:
            return hour, minute
    except ValueError:
        pass
    raise EvoError(f"--at {at!r} is not a time of day.", "Use HH:MM in 24-hour form, e.g. --at 03:00.")


def default_kind() -> str:
    if platform.system() == "Darwin":
        return "launchd"
    return "systemd" if shutil.which("systemctl") and Path("/run/systemd/system").is_dir() else "cron"


def night_command(home: Path) -> list[str]:
    """The same interpreter and data dir as now, so the schedule runs this installation."""
    return [sys.executable, "-m", "evo_tr", "night"]


def plan(kind: str, at: str, home: Path, user_home: Path | None = None) -> Plan:
    hour, minute = parse_at(at)
    if kind not in KINDS:
        raise EvoError(f"Unknown schedule kind {kind!r}.", f"Choose one of: {', '.join(KINDS)}.")
    user_home = user_home or Path.home()
    cmd = night_command(home)
    env = {"EVO_HOME": str(home)}
    if kind == "cron":
        line = f"{minute} {hour} * * * EVO_HOME={shlex.quote(str(home))} {shlex.join(cmd)} >> {shlex.quote(str(home / 'logs' / 'night.log'))} 2>&1 {CRON_MARKER}"
        return Plan(kind, hour, minute, cmd, {}, line)
    if kind == "systemd":
        unit_dir = user_home / ".config" / "systemd" / "user"
        service = (
            "[Unit]\nDescription=EVO-TR night run: learn from the day's conversations\n\n"
            f"[Service]\nType=oneshot\nEnvironment=EVO_HOME={home}\nExecStart={shlex.join(cmd)}\nNice=10\n"
        )
        timer = (
            "[Unit]\nDescription=Run the EVO-TR night analysis daily\n\n"
            f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
        )
        return Plan(kind, hour, minute, cmd, {unit_dir / f"{SYSTEMD_NAME}.service": service, unit_dir / f"{SYSTEMD_NAME}.timer": timer})
    args = "".join(f"        <string>{a}</string>\n" for a in cmd)
    envs = "".join(f"        <key>{k}</key>\n        <string>{v}</string>\n" for k, v in env.items())
    plist = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        '<plist version="1.0">\n<dict>\n'
        f"    <key>Label</key>\n    <string>{LAUNCHD_LABEL}</string>\n"
        f"    <key>ProgramArguments</key>\n    <array>\n{args}    </array>\n"
        f"    <key>EnvironmentVariables</key>\n    <dict>\n{envs}    </dict>\n"
        f"    <key>StartCalendarInterval</key>\n    <dict>\n        <key>Hour</key>\n        <integer>{hour}</integer>\n"
        f"        <key>Minute</key>\n        <integer>{minute}</integer>\n    </dict>\n"
        f"    <key>StandardOutPath</key>\n    <string>{home / 'logs' / 'night.log'}</string>\n"
        f"    <key>StandardErrorPath</key>\n    <string>{home / 'logs' / 'night.log'}</string>\n"
        "</dict>\n</plist>\n"
    )
    return Plan(kind, hour, minute, cmd, {user_home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist": plist})


def _crontab() -> str:
    if not shutil.which("crontab"):
        raise EvoError("No `crontab` command on this machine.", "Install cron, or use --kind systemd (Linux) / launchd (macOS).")
    proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def _write_crontab(text: str) -> None:
    proc = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EvoError(f"crontab refused the new table: {proc.stderr.strip()}", "Check `crontab -l`.")


def install(p: Plan) -> list[str]:
    """Write the schedule; returns what was done, one line each (activation commands that failed say how to finish)."""
    done = []
    if p.kind == "cron":
        lines = [ln for ln in _crontab().splitlines() if CRON_MARKER not in ln]
        _write_crontab("\n".join([*lines, p.cron_line]) + "\n")
        return [f"crontab: {p.cron_line}"]
    for path, text in p.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".partial")
        tmp.write_text(text)
        os.replace(tmp, path)
        done.append(f"wrote {path}")
    activate = ([["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", f"{SYSTEMD_NAME}.timer"]]
                if p.kind == "systemd" else [["launchctl", "load", "-w", str(next(iter(p.files)))]])
    for cmd in activate:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            ok = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        done.append(("ran " if ok else "could not run (run it yourself): ") + shlex.join(cmd))
    return done


def remove(kind: str, user_home: Path | None = None) -> list[str]:
    user_home = user_home or Path.home()
    if kind == "cron":
        table = _crontab()
        kept = [ln for ln in table.splitlines() if CRON_MARKER not in ln]
        _write_crontab("\n".join(kept) + ("\n" if kept else ""))
        return ["removed the crontab line" if len(kept) != len(table.splitlines()) else "no crontab line was installed"]
    files = list(plan(kind, "03:00", Path("/"), user_home).files)
    if kind == "systemd":
        subprocess.run(["systemctl", "--user", "disable", "--now", f"{SYSTEMD_NAME}.timer"], capture_output=True)
    elif shutil.which("launchctl"):
        subprocess.run(["launchctl", "unload", "-w", str(files[0])], capture_output=True)
    out = []
    for path in files:
        if path.exists():
            path.unlink()
            out.append(f"removed {path}")
    return out or ["nothing was installed"]


def status(kind: str, user_home: Path | None = None) -> dict[str, object]:
    user_home = user_home or Path.home()
    if kind == "cron":
        try:
            line = next((ln for ln in _crontab().splitlines() if CRON_MARKER in ln), None)
        except EvoError as exc:
            return {"kind": kind, "installed": False, "problem": exc.message}
        fields = (line or "").split()
        when = f"{int(fields[1]):02d}:{int(fields[0]):02d}" if len(fields) > 1 and fields[0].isdigit() and fields[1].isdigit() else None
        return {"kind": kind, "installed": line is not None, "entry": line, "at": when}
    files = list(plan(kind, "03:00", Path("/"), user_home).files)
    present = [p for p in files if p.exists()]
    when = None
    for p in present:
        for line in p.read_text().splitlines():
            if line.startswith("OnCalendar="):
                when = line.split(" ")[-1][:5]  # HH:MM, as cron's
    return {"kind": kind, "installed": len(present) == len(files), "files": [str(p) for p in present], "at": when}
