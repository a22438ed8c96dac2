"""`evo backup`, `evo restore`, `evo erase`: the user's data as one archive, back again, or gone."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from evo_tr.config import load_settings
from evo_tr.errors import EvoError

console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]


@contextmanager
def _progress(enabled: bool = True):
    """A transient byte progress bar on stderr; yields the callback the archive functions take."""
    if not enabled:
        yield lambda _what, _done, _total: None
        return
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=err, transient=True)
    with bar:
        task = bar.add_task("starting", total=None)
        yield lambda what, done, total: bar.update(task, description=what, completed=done, total=total or None)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def _counts_line(counts: dict) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)


def backup(
    archive: Annotated[Path, typer.Argument(help="Archive to write: .tar, or .tar.gz / .tgz for gzip.")],
    gzip: Annotated[Optional[bool], typer.Option("--gzip/--no-gzip", help="Compress (default: by the file name's ending).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace ARCHIVE if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Save everything you own to one archive (memories, documents, sessions, adapters, config…; models only listed).

    Memories, your knowledge documents, sessions with turns and feedback, proposals and night state, night
    reports, adapters and router trained here, training data, the config file and the chat history. Base
    models are not included, only recorded by name and sha256 (`evo models pull` brings them back).
    """
    from evo_tr.backup.archive import create_backup

    settings = load_settings()
    with _progress(not as_json) as progress:
        result = create_backup(settings, archive, gzip=gzip, force=force, progress=progress)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    console.print(f"[green]✓[/green] backup written to {result.archive}: {result.files} files, {_mb(result.bytes)}")
    console.print(f"  sha256 {result.sha256}")
    if line := _counts_line(result.counts):
        console.print(f"  [dim]{line}[/dim]")
    console.print(f"  [dim]knowledge: {result.knowledge}[/dim]")
    if result.models:
        console.print(f"  [dim]not included (pull them again after a restore): {', '.join(m.name for m in result.models)}[/dim]")
    for notice in result.notices:
        err.print(f"[yellow]⚠ {notice}[/yellow]")


def restore(
    archive: Annotated[Path, typer.Argument(help="Archive written by `evo backup`.")],
    force: Annotated[bool, typer.Option("--force", help="EVO_HOME already holds data: move it aside (never deleted), then restore.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Only verify every member's sha256; write nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into EVO_HOME, on any machine: every member is verified before anything is written.

    An EVO_HOME that already holds data is refused unless --force, which moves that data aside (never deletes it).
    """
    from evo_tr.backup.archive import restore_backup

    settings = load_settings()
    with _progress(not as_json) as progress:
        result = restore_backup(settings, archive, force=force, check_only=check, progress=progress)
    if as_json:
        print(json.dumps({"checked_only": check, **result.as_dict()}, ensure_ascii=False))
        return
    made = f"made {result.created_at[:16].replace('T', ' ')} by evo-tr {result.evo_tr_version}"
    if check:
        console.print(f"[green]✓[/green] {result.archive} is intact: {result.files} files, {_mb(result.bytes)} ({made})")
    else:
        console.print(f"[green]✓[/green] restored {result.files} files ({_mb(result.bytes)}) into {result.home} ({made})")
        if result.moved_aside:
            console.print(f"  the previous data was moved to {result.moved_aside}")
        if result.config_file:
            console.print(f"  config file: {result.config_file}")
    if line := _counts_line(result.counts):
        console.print(f"  [dim]{line}[/dim]")
    for m in result.models_to_pull:
        how = f"evo models pull {m.name}" if m.source != "local" else f"evo models add PATH --name {m.name}"
        console.print(f"  [yellow]model {m.name} is not here:[/yellow] {how}")
    for notice in result.notices:
        err.print(f"[yellow]⚠ {notice}[/yellow]")


def erase(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (for scripts).")] = False,
    models: Annotated[bool, typer.Option("--models", help="Delete the downloaded base models too.")] = False,
    keep_config: Annotated[bool, typer.Option("--keep-config", help="Keep the config file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete everything you own, leaving none of it in the files (base models stay unless --models).

    Memories, documents, sessions, feedback, reports, adapters, router, training data, logs, chat history and the
    config file. Stop `evo serve` and open chats first. Want a copy? `evo backup FILE` before.
    """
    from evo_tr.backup.erase import erase_all, erase_plan

    settings = load_settings()
    plan = erase_plan(settings, models=models, keep_config=keep_config)
    if not yes:
        if not sys.stdin.isatty():
            raise EvoError("`evo erase` asks for confirmation, and there is no terminal to ask in.", "Pass --yes to erase without asking.")
        if not plan:
            console.print(f"Nothing to erase in {settings.home}.")
            return
        for path, files, size in plan:
            console.print(f"  {path}  [dim]({files} files, {_mb(size)})[/dim]")
        if not typer.confirm(f"Delete all of the above for good (from {settings.home})?", default=False):
            console.print("Nothing was erased.")
            raise typer.Exit(1)
    result = erase_all(settings, models=models, keep_config=keep_config)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    console.print(f"[green]✓[/green] erased {len(result.removed)} entries ({result.files} files, {_mb(result.bytes)}) from {result.home}")
    if result.kept:
        console.print(f"  [dim]kept: {', '.join(result.kept)}[/dim]")
    for notice in result.notices:
        err.print(f"[yellow]⚠ {notice}[/yellow]")
