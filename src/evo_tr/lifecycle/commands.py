"""`evo logs …`: the application log and the conversation store, for people and scripts."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from evo_tr.config import load_settings
from evo_tr.errors import EvoError

app = typer.Typer(help="Application log and conversation statistics.", no_args_is_help=True)
console = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def parse_day(value: str | None, option: str = "--since") -> str:
    """YYYY-MM-DD → ISO start of that day (UTC), with a clear error for anything else."""
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise EvoError(f"{option} {value!r} is not a date.", "Use YYYY-MM-DD, e.g. 2026-11-24.") from None


@app.command("tail")
def logs_tail(n: Annotated[int, typer.Option("-n", help="How many entries.")] = 20, as_json: JsonOpt = False) -> None:
    """The last entries of the JSON-lines application log ($EVO_HOME/logs/evo.jsonl)."""
    from evo_tr.lifecycle.logger import tail

    entries = tail(load_settings(), n)
    if as_json:
        print(json.dumps(entries, ensure_ascii=False))
        return
    if not entries:
        console.print("The log is empty.")
        return
    for e in entries:
        style = {"ERROR": "red", "WARNING": "yellow"}.get(e.get("level", ""), "dim")
        console.print(f"[{style}]{e.get('ts', '')[:19]} {e.get('level', ''):7}[/{style}] {e.get('msg', '')}")


@app.command("show")
def logs_show(session_id: Annotated[str, typer.Argument(help="Session id or unique prefix.")], as_json: JsonOpt = False) -> None:
    """Every turn of one session with expert, timings, errors and feedback."""
    from evo_tr.lifecycle import ConversationStore

    store = ConversationStore(load_settings().conversations_db)
    info = store.find_session(session_id)
    if info is None:
        raise EvoError(f"No session {session_id!r}.", "See `evo sessions list`.")
    turns = store.turns(info.id)
    if as_json:
        print(json.dumps({"session": info.as_dict(), "turns": [t.as_dict() for t in turns],
                          "feedback": [f.as_dict() for f in store.feedback_for(info.id)]}, ensure_ascii=False))
        return
    table = Table("#", "time", "intent", "expert", "ttft ms", "overhead ms", "tokens", "status", "message")
    for t in turns:
        status = "interrupted" if t.interrupted else ("error" if t.error else (t.feedback or "ok"))
        table.add_row(str(t.number), t.started_at[11:19], t.intent, t.expert, f"{t.ttft_ms or 0:.0f}", f"{t.overhead_ms or 0:.1f}",
                      str(t.completion_tokens), status, t.message[:50])
    console.print(f"[bold]{info.id}[/bold] · {info.title}")
    console.print(table)


@app.command("stats")
def logs_stats(
    since: Annotated[Optional[str], typer.Option(help="First day (YYYY-MM-DD, UTC).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Day after the last one (YYYY-MM-DD, UTC).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turns, sessions, intent and expert mix, errors, interruptions, feedback and median latencies."""
    from evo_tr.lifecycle import ConversationStore

    stats = ConversationStore(load_settings().conversations_db).stats(parse_day(since), parse_day(until, "--until") or "9999")
    if as_json:
        print(json.dumps(stats, ensure_ascii=False))
        return
    table = Table(show_header=False, box=None)
    for key, value in stats.items():
        table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value))
    console.print(table)


def today() -> str:
    return datetime.now().date().isoformat()


# -- night, report, review, schedule --------------------------------------------------------------
schedule_app = typer.Typer(help="Run `evo night` every night: crontab, systemd user timer, or launchd.", no_args_is_help=True)


def night(
    day: Annotated[Optional[str], typer.Option("--date", help="Day to process (YYYY-MM-DD, local time; default: yesterday).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Analyse and show what would be learned; write nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Night mode: analyse the day, extract knowledge into memory, propose training data, retrain behind a gate, report."""
    from rich.markdown import Markdown

    from evo_tr.lifecycle.night import markdown, run_night

    err = Console(stderr=True)
    settings = load_settings()
    result = run_night(settings, parse_day(day, "--date") or None, dry_run=dry_run, say=lambda m: err.print(f"[dim]{m}[/dim]"))
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    console.print(Markdown(markdown(result)))
    if not dry_run:
        console.print(f"[dim]Report: {result['report']['folder']}[/dim]")


def report(
    day: Annotated[Optional[str], typer.Argument(help="Day (YYYY-MM-DD); default: the latest report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a night report (Markdown in the terminal, or its JSON)."""
    from rich.markdown import Markdown

    from evo_tr.lifecycle.night import report_days

    settings = load_settings()
    folder = settings.reports_dir
    days = report_days(settings)
    if not days:
        raise EvoError("No night report yet.", "Run `evo night` (or install the schedule: `evo schedule install`).")
    target = parse_day(day, "DATE") if day else days[-1]
    if target not in days:
        raise EvoError(f"No report for {target}.", f"Reports exist for: {', '.join(days[-10:])}.")
    if as_json:
        print((folder / target / "report.json").read_text(encoding="utf-8"))
        return
    console.print(Markdown((folder / target / "report.md").read_text(encoding="utf-8")))
    console.print(f"[dim]Charts: {folder / target}[/dim]")


def review(
    expert: Annotated[Optional[str], typer.Option(help="Only this expert's proposals.")] = None,
    accept: Annotated[Optional[list[int]], typer.Option("--accept", help="Accept proposal ID (repeatable).")] = None,
    reject: Annotated[Optional[list[int]], typer.Option("--reject", help="Reject proposal ID (repeatable).")] = None,
    accept_all: Annotated[bool, typer.Option("--accept-all", help="Accept every pending proposal shown.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Training-data proposals from the night runs: list the pending ones, accept or reject them."""
    from evo_tr.lifecycle import ConversationStore

    store = ConversationStore(load_settings().conversations_db)
    pending = store.proposals(status="pending", expert=expert)
    unknown = store.unknown_proposals([*(accept or []), *(reject or [])], expert=expert)
    if unknown:
        raise EvoError(f"No proposal with id {', '.join(map(str, unknown))}.", "List them with `evo data review`.")
    changed = 0
    if accept_all:
        changed += store.set_proposal_status([p["id"] for p in pending], "accepted")
    changed += store.set_proposal_status(list(accept or []), "accepted") + store.set_proposal_status(list(reject or []), "rejected")
    if changed or accept or reject or accept_all:
        pending = store.proposals(status="pending", expert=expert)
    if as_json:
        print(json.dumps({"changed": changed, "pending": pending, "accepted_unused": len(store.proposals(status="accepted", expert=expert, unused=True))},
                         ensure_ascii=False))
        return
    if changed:
        console.print(f"[green]{changed} proposal(s) updated.[/green]")
    if not pending:
        console.print("No proposals waiting for review.")
        return
    table = Table("id", "expert", "kind", "day", "user", "assistant")
    for p in pending:
        table.add_row(str(p["id"]), p["expert"], p["kind"], p["day"], p["messages"][0]["content"][:50], p["messages"][-1]["content"][:60])
    console.print(table)
    console.print("[dim]Accept with --accept ID (or --accept-all), reject with --reject ID.[/dim]")


@schedule_app.command("install")
def schedule_install(
    at: Annotated[str, typer.Option(help="Time of day, HH:MM (24-hour, local).")] = "03:00",
    kind: Annotated[Optional[str], typer.Option(help="cron, systemd or launchd (default: what this OS uses).")] = None,
    show: Annotated[bool, typer.Option("--print", help="Only print what would be installed.")] = False,
) -> None:
    """Run `evo night` daily at --at."""
    from evo_tr.lifecycle import schedule

    settings = load_settings()
    p = schedule.plan(kind or schedule.default_kind(), at, settings.home)
    if show:
        if p.cron_line:
            console.print(p.cron_line, markup=False)
        for path, text in p.files.items():
            console.print(f"# {path}", markup=False)
            console.print(text, markup=False)
        return
    for line in schedule.install(p):
        console.print(line, markup=False)


@schedule_app.command("remove")
def schedule_remove(kind: Annotated[Optional[str], typer.Option(help="cron, systemd or launchd.")] = None) -> None:
    """Remove the nightly schedule."""
    from evo_tr.lifecycle import schedule

    for line in schedule.remove(kind or schedule.default_kind()):
        console.print(line, markup=False)


@schedule_app.command("status")
def schedule_status(kind: Annotated[Optional[str], typer.Option(help="cron, systemd or launchd.")] = None, as_json: JsonOpt = False) -> None:
    """Is the nightly run installed, and when."""
    from evo_tr.lifecycle import schedule

    st = schedule.status(kind or schedule.default_kind())
    if as_json:
        print(json.dumps(st))
        return
    console.print(f"{st['kind']}: {'installed' if st['installed'] else 'not installed'}" + (f" ({st.get('entry') or st.get('at') or ''})" if st["installed"] else ""))
