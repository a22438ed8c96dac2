"""`evo memory …`: inspect, edit, export and evaluate the long-term memory from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from evo_tr.config import load_settings
from evo_tr.errors import EvoError
from evo_tr.memory.types import MEMORY_TYPES, Memory, MemoryHit

app = typer.Typer(help="Long-term memory: add, search, list, forget, export/import, stats, eval.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]
TypeOpt = Annotated[Optional[str], typer.Option("--type", "-t", help=f"Memory type: {', '.join(MEMORY_TYPES)}.")]


def _store():
    from evo_tr.memory.store import MemoryStore

    return MemoryStore(load_settings())


def _emit(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False))


def _table(rows: list[Memory], hits: list[MemoryHit] | None = None) -> Table:
    table = Table(show_lines=False)
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("type")
    if hits is not None:
        table.add_column("sim", justify="right")
    table.add_column("text")
    table.add_column("state", no_wrap=True)
    table.add_column("source", style="dim")
    table.add_column("stated", style="dim", no_wrap=True)
    for i, m in enumerate(rows):
        sim = [f"{hits[i].similarity:.3f}"] if hits is not None else []
        origin = m.source + (f" {m.session}#{m.turn}" if m.session else "")
        text = m.text if len(m.text) < 200 else m.text[:197] + "…"
        table.add_row(m.id[:12], m.type, *sim, text if m.current else f"[dim]{text}[/dim]", state_of(m), origin, (m.stated_at or m.created_at)[:19])
    return table


def state_of(m: Memory) -> str:
    """current / history (and what replaced it) for facts about one attribute; who wrote an exchange."""
    if not m.current:
        return f"[yellow]history[/yellow] → {m.superseded_by[:8]} ({m.superseded_at[:10]})"
    if m.attribute:
        return f"[green]current[/green] {m.attribute}"
    return "assistant's words" if m.by_assistant else ""


@app.command("add")
def add(
    text: Annotated[str, typer.Argument(help="What to remember; '-' reads stdin.")],
    memory_type: Annotated[str, typer.Option("--type", "-t", help=f"One of: {', '.join(MEMORY_TYPES)}.")] = "fact",
    as_json: JsonOpt = False,
) -> None:
    """Store a memory (exact and near duplicates are merged; long text is chunked)."""
    if text == "-":
        text = sys.stdin.read()
    result = _store().add_memory(text, memory_type=memory_type, source="cli")
    if as_json:
        _emit(result.as_dict())
    elif result.merged:
        console.print(f"Already known: merged into [cyan]{result.id[:12]}[/cyan].")
    else:
        extra = f" in {len(result.ids)} chunks" if len(result.ids) > 1 else ""
        console.print(f"Remembered{extra}: [cyan]{result.id[:12]}[/cyan]")


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words or a question.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="How many results.")] = 5,
    memory_type: TypeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Memories closest to QUERY (semantic search, re-ranked)."""
    hits = _store().search(query, top_k, memory_type)
    if as_json:
        _emit({"query": query, "hits": [h.as_dict() for h in hits]})
    elif not hits:
        console.print("No memories yet.")
    else:
        console.print(_table([h.memory for h in hits], hits))


@app.command("list")
def list_(
    memory_type: TypeOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The most recent memories."""
    rows = _store().list(memory_type, limit)
    if as_json:
        _emit({"memories": [m.as_dict() for m in rows]})
    elif not rows:
        console.print("No memories yet.")
    else:
        console.print(_table(rows))


@app.command("forget")
def forget(
    query: Annotated[Optional[str], typer.Argument(help="A memory id (or its first 12 characters) or a search query.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Delete every memory (everything EVO-TR knows about you).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete memories: by id, by query (shows matches first), or --all. Asks before deleting."""
    store = _store()
    if everything:
        total = store.count()
        targets: list[Memory] = []
        what = f"ALL {total} memories"
    elif query:
        targets = _resolve(store, query)
        what = f"{len(targets)} memor{'y' if len(targets) == 1 else 'ies'}"
    else:
        raise EvoError("Nothing to forget.", "Give an id or a query (evo memory forget \"Kaan\"), or --all.")
    if not everything and not targets:
        if as_json:
            _emit({"deleted": 0, "ids": []})
        else:
            console.print("Nothing matches; nothing deleted.")
        return
    if targets and not as_json:
        console.print(_table(targets))
    if not yes:
        if not sys.stdin.isatty():
            raise EvoError(f"Refusing to delete {what} without confirmation.", "Add --yes to confirm.")
        if not typer.confirm(f"Delete {what}?", default=False):
            console.print("Kept.")
            return
    deleted = store.clear_all() if everything else store.delete([m.id for m in targets])
    if as_json:
        _emit({"deleted": deleted, "ids": [m.id for m in targets] if not everything else "all"})
    else:
        console.print(f"Deleted {deleted} memor{'y' if deleted == 1 else 'ies'}.")


def _resolve(store, query: str) -> list[Memory]:
    from evo_tr.memory.manager import find_memories

    return find_memories(store, query)


@app.command("export")
def export(path: Annotated[Path, typer.Argument(help="JSONL file to write.")], as_json: JsonOpt = False) -> None:
    """Write every memory with all metadata as JSONL (re-import with `evo memory import`)."""
    n = _store().export_jsonl(path)
    if as_json:
        _emit({"exported": n, "path": str(path)})
    else:
        console.print(f"Exported {n} memories to {path}.")


@app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="JSONL file written by `evo memory export`.")], as_json: JsonOpt = False) -> None:
    """Restore memories exactly (ids and metadata); bad lines are reported with their number and skipped."""
    report = _store().import_jsonl(path)
    if as_json:
        _emit(report.as_dict())
        return
    console.print(f"Imported {report.imported} memories from {path}.")
    for number, reason in report.skipped:
        err.print(f"[yellow]line {number} skipped:[/yellow] {reason}")


@app.command("stats")
def stats(as_json: JsonOpt = False) -> None:
    """Counts per type and source, where the store lives, which embedder it uses."""
    s = _store().get_stats()
    if as_json:
        _emit(s.as_dict())
        return
    table = Table(show_header=False, box=None)
    table.add_row("memories", str(s.total))
    table.add_row("by type", ", ".join(f"{k} {v}" for k, v in sorted(s.by_type.items())) or "-")
    table.add_row("by source", ", ".join(f"{k} {v}" for k, v in sorted(s.by_source.items())) or "-")
    table.add_row("backend", f"{s.backend} ({s.location})")
    table.add_row("embedder", s.embedder)
    table.add_row("newest", s.newest or "-")
    console.print(table)


@app.command("eval")
def eval_(
    k: Annotated[int, typer.Option("--k", min=1, max=20, help="Recall@k cut-off.")] = 3,
    contamination: Annotated[bool, typer.Option("--contamination/--no-contamination", help="Also run the contamination check (loads the chat model's tokenizer).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval quality, and whether the assistant's own answers leak into later prompts, in throwaway stores.

    Recall: the packaged (fact, question) pairs among distractors. Contamination: scripted sessions plant
    false assistant answers, then later questions are assembled by the real orchestrator and their prompts read
    (memory_contamination_rate must be 0); changed facts must come back with their latest value only.
    """
    from evo_tr.memory.evaluate import evaluate_recall

    settings = load_settings()
    say = lambda m: err.print(f"[dim]{m}[/dim]")  # noqa: E731
    result = evaluate_recall(settings, k=k, say=say)
    if contamination:
        from evo_tr.contamination import evaluate_contamination
        from evo_tr.engine import load_engine

        engine = load_engine(settings)
        try:
            result["contamination"] = evaluate_contamination(settings, engine, say=say)
        finally:
            engine.close()
    if as_json:
        _emit(result)
        return
    console.print(
        f"recall@{k} [bold]{result[f'recall_at_{k}']:.3f}[/bold] · recall@1 {result['recall_at_1']:.3f} · MRR {result['mrr']:.3f} "
        f"({result['pairs']} pairs, {result['distractors']} distractors; search p50 {result['search_ms_p50']} ms)"
    )
    for miss in result["misses"]:
        console.print(f"[yellow]miss[/yellow] {miss['question']} → expected {miss['expected']!r}")
    if contamination:
        c = result["contamination"]
        colour = "green" if c["contamination_rate"] == 0 else "red"
        console.print(
            f"contamination [bold {colour}]{c['contamination_rate']:.3f}[/bold {colour}] of {c['contamination_probes']} later prompts · "
            f"own answers recalled when asked {c['own_answer_recall']:.2f} · changed facts current {c['fact_current']:.2f} · "
            f"off-topic notes {c['irrelevant_injection_rate']:.2f}"
        )
        for item in c["contaminated"]:
            console.print(f"[red]planted claim in prompt[/red] {item['question']} ← {', '.join(item['claims'])}")
        for item in c["fact_failures"]:
            console.print(f"[yellow]fact not current[/yellow] {item['question']} → expected {item['expects']!r}")
