"""`evo knowledge …`: add the user's documents, list, remove, search, open a passage, evaluate retrieval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evo_tr.config import load_settings
from evo_tr.errors import EvoError

app = typer.Typer(
    help="Reference knowledge (kept apart from personal memory): the Turkish pack and your documents.", no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]
STATUS_TR = {"added": "eklendi", "updated": "güncellendi", "unchanged": "değişmedi", "skipped": "atlandı"}


def _store():
    from evo_tr.knowledge.store import KnowledgeStore

    return KnowledgeStore(load_settings(), say=lambda m: err.print(f"[dim]{m}[/dim]"))


def _emit(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False))


@app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (read recursively): .md .txt .html .pdf.")],
    as_json: JsonOpt = False,
) -> None:
    """Add documents: a changed file replaces its old passages, an unchanged one is skipped, an unreadable one says why."""
    from evo_tr.knowledge.store import iter_files

    store = _store()
    removed = store.collect_orphans()  # what an interrupted earlier add left behind
    files = list(iter_files(paths)) if all(p.expanduser().exists() for p in paths) else []
    reports = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("belgeler ekleniyor", total=len(files) or None)

        def done(report) -> None:
            reports.append(report)
            progress.update(task, advance=1, description=Path(report.path).name[:40])

        store.add_paths(paths, on_file=done)
    if as_json:
        _emit({"files": [r.as_dict() for r in reports], "orphans_removed": removed,
               "chunks": sum(r.chunks for r in reports if r.status in ("added", "updated"))})
        return
    for r in reports:
        colour = {"added": "green", "updated": "cyan", "unchanged": "dim", "skipped": "yellow"}[r.status]
        detail = f"{r.chunks} parça" if r.status != "skipped" else r.reason
        console.print(f"[{colour}]{STATUS_TR[r.status]}[/{colour}] {r.path} — {detail}")
    counts = {s: sum(1 for r in reports if r.status == s) for s in STATUS_TR}
    console.print(", ".join(f"{n} {STATUS_TR[s]}" for s, n in counts.items() if n) or "Dosya bulunamadı.")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Your documents (path, passages, size, when added) and the pack's version."""
    store = _store()
    docs = store.documents()
    stats = store.stats()
    if as_json:
        _emit({"pack_version": stats["pack_version"], "pack_entries": stats["pack_entries"], "documents": [d.as_dict() for d in docs]})
        return
    console.print(f"Türkçe bilgi paketi: {stats['pack_entries']} kayıt (sürüm {stats['pack_version'] or 'yüklenmedi'})")
    if not docs:
        console.print("Henüz belge yok: [bold]evo knowledge add DOSYA_YA_DA_KLASÖR[/bold] / No documents yet.")
        return
    table = Table()
    for col in ("path", "passages", "size", "kind", "updated"):
        table.add_column(col)
    for d in docs:
        table.add_row(d.path, str(d.chunks), f"{d.size / 1024:.1f} KB", d.kind, d.updated_at[:19])
    console.print(table)


@app.command("remove")
def remove(
    target: Annotated[str, typer.Argument(help="A document's path, or a folder (every document under it).")],
    as_json: JsonOpt = False,
) -> None:
    """Remove documents and their passages (the pack stays)."""
    removed = _store().remove(target)
    if as_json:
        _emit({"removed": removed})
    elif not removed:
        raise EvoError(f"No document {target!r} in the knowledge store.", "See `evo knowledge list` for the stored paths.")
    else:
        console.print(f"{len(removed)} belge kaldırıldı / removed: " + ", ".join(removed))


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words or a question.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50, help="How many passages.")] = 5,
    documents_only: Annotated[bool, typer.Option("--documents", help="Only your documents, not the pack.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Closest passages with their sources; `relevant` says whether a chat turn would use them."""
    store = _store()
    hits = store.search(query, top_k, include_pack=not documents_only)
    chosen = {h.memory.id for h in store.relevant(query, hits)}
    rows = [{"id": h.memory.id, "label": h.memory.extra["label"], "similarity": round(h.similarity, 4), "relevant": h.memory.id in chosen,
             "text": h.memory.text} for h in hits]
    if as_json:
        _emit({"query": query, "hits": rows})
        return
    if not rows:
        console.print("Bir şey bulunamadı / nothing found.")
        return
    table = Table(show_lines=True)
    for col in ("sim", "used", "source", "passage"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r['similarity']:.3f}", "✓" if r["relevant"] else "", r["label"], r["text"][:300])
    console.print(table)


@app.command("show")
def show(passage_id: Annotated[str, typer.Argument(help="A passage id (from `search` or an answer's sources).")], as_json: JsonOpt = False) -> None:
    """Open the passage a source came from: its full text and where it is in the file."""
    passage = _store().passage(passage_id)
    if passage is None:
        raise EvoError(f"No passage {passage_id!r}.", "Ids are shown by `evo knowledge search` and under answers (`evo ask --json`).")
    if as_json:
        _emit({"id": passage.id, "text": passage.text, **passage.extra})
        return
    console.print(f"[bold]{passage.extra['label']}[/bold]")
    console.print(passage.text)


@app.command("stats")
def stats(as_json: JsonOpt = False) -> None:
    """Pack version and size, documents, passages, where the store lives."""
    data = _store().stats()
    if as_json:
        _emit(data)
        return
    for key, value in data.items():
        console.print(f"{key}: {value}")


@app.command("eval")
def eval_(as_json: JsonOpt = False) -> None:
    """Retrieval on our own question set (kept apart from the pack's text), in a throwaway store."""
    from evo_tr.knowledge.evaluate import evaluate_knowledge

    result = evaluate_knowledge(load_settings(), say=lambda m: err.print(f"[dim]{m}[/dim]"))
    if as_json:
        _emit(result)
        return
    console.print(
        f"recall@3 [bold]{result['recall_at_3']:.3f}[/bold] · reaches the prompt {result['injected_recall']:.3f} · "
        f"turns with an irrelevant passage {result['irrelevant_turn_share']:.3f} ({result['questions']} questions; "
        f"search p50 {result['search_ms_p50']} ms)"
    )
    for miss in result["misses"]:
        console.print(f"[yellow]miss[/yellow] {miss['question']} → expected {', '.join(miss['expects'])}")
