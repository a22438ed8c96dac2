"""The `evo` command line: chat, ask, models, config, doctor, bench."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from dotenv import load_dotenv
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from evo_tr import __version__
from evo_tr.config import Settings, config_file_path, describe_settings, load_settings
from evo_tr.backup.commands import backup as backup_command, erase as erase_command, restore as restore_command
from evo_tr.errors import DiskFullError, EvoError, disk_full_error, is_disk_full
from evo_tr.experts.commands import adapters_app, data_app, eval_app
from evo_tr.experts.commands import train as train_command
from evo_tr.lifecycle.commands import app as logs_app
from evo_tr.lifecycle.commands import night, report, review, schedule_app
from evo_tr.knowledge.commands import app as knowledge_app
from evo_tr.memory.commands import app as memory_app
from evo_tr.serve.commands import serve as serve_command
from evo_tr.users.commands import app as users_app

# The order a person meets the commands: talking first, then what it remembers and knows, its experts,
# the night, and setup last (Typer would list plain commands before groups, in registration order).
COMMAND_ORDER = (
    "chat", "ask", "serve", "sessions", "memory", "knowledge", "backup", "restore", "erase", "models", "train", "adapters", "eval", "data", "night", "report",
    "schedule", "logs", "router", "config", "doctor", "bench",
)


class OrderedGroup(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _plain_flags() -> None:
    """Show on/off flags without a type: Typer 0.29 prints `<bool>` next to every `--json` or `--no-memory`."""
    from typer.core import TyperOption

    original = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_plain_flags()
app = typer.Typer(
    help="EVO-TR: a local, private, Turkish-first AI assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OrderedGroup,
)
models_app = typer.Typer(help="List, provision and register GGUF models.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(models_app, name="models")
router_app = typer.Typer(help="Train, evaluate and query the intent router.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(router_app, name="router")
app.add_typer(memory_app, name="memory")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(adapters_app, name="adapters")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.add_typer(logs_app, name="logs")
app.add_typer(schedule_app, name="schedule")
app.command("night")(night)
app.command("report")(report)
data_app.command("review")(review)
sessions_app = typer.Typer(help="Stored chat sessions: list, show, delete.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
app.command("train")(train_command)
app.command("serve")(serve_command)
app.add_typer(users_app, name="users")
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("erase")(erase_command)

console = Console()
err = Console(stderr=True)
log = logging.getLogger("evo_tr")

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Registry name of the model (default: settings.model).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]
NoMemoryOpt = Annotated[bool, typer.Option("--no-memory", help="Neither recall nor save memories this time.")]
NoKnowledgeOpt = Annotated[bool, typer.Option("--no-knowledge", help="No reference notes (pack, documents) this time.")]


def _settings() -> Settings:
    return load_settings()


def _byte_progress() -> Progress:
    """A transient byte progress bar on stderr (assembly, hashing, downloads)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _load_engine_with_progress(settings: Settings, model: str | None):
    """Load the engine; first-time provisioning or hashing shows a progress bar."""
    from evo_tr.engine import load_engine
    from evo_tr.models import ModelStore

    name = model or settings.model
    spec = ModelStore(settings.models_dir).registry.get(name)
    with _byte_progress() as progress:
        task = progress.add_task(f"preparing {name}", total=spec.size)
        return load_engine(settings, name, progress=lambda n: progress.advance(task, n))


# -- chat / ask ------------------------------------------------------------------------
SessionOpt = Annotated[Optional[str], typer.Option("--session", "-s", help="Continue this stored session (id or unique prefix; see `evo sessions list`).")]
ExpertOpt = Annotated[Optional[str], typer.Option("--expert", "-e", help="Force an expert (tr_chat, python_coder), 'base', or 'auto' (router picks).")]


def _orchestrator(settings: Settings, model: str | None, config, *, memory: bool, knowledge: bool = True):
    """Engine (with a progress bar on first use) plus router, adapters, memory and the conversation store."""
    from evo_tr.orchestrator import Orchestrator

    engine = _load_engine_with_progress(settings, model)
    say = lambda m: err.print(f"[dim]{m}[/dim]")  # noqa: E731 (the pack loads on first use: a few seconds)
    return Orchestrator.build(settings, engine, config, model=model, memory=memory, knowledge=knowledge, say=say)


@app.command()
def chat(model: ModelOpt = None, no_memory: NoMemoryOpt = False, no_knowledge: NoKnowledgeOpt = False, session: SessionOpt = None,
         expert: ExpertOpt = None) -> None:
    """Interactive chat: streams answers, routes each message to an expert, remembers; /help lists commands."""
    from evo_tr.engine import generation_config
    from evo_tr.repl import Repl

    settings = _settings()
    orch = _orchestrator(settings, model, generation_config(settings), memory=not no_memory, knowledge=not no_knowledge)
    try:
        current = orch.resume(session) if session else orch.new_session()
        if expert:
            orch.set_mode(current, expert)
        Repl(orch, current, settings, console).run()
    finally:
        orch.close()
        orch.engine.close()


@app.command()
def ask(
    prompt: Annotated[Optional[str], typer.Argument(help="The question; omit or '-' to read stdin.")] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    max_tokens: Annotated[Optional[int], typer.Option(help="Cap on answer length in tokens.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed for reproducible answers.")] = None,
    system: Annotated[Optional[str], typer.Option(help="Override the system prompt (every expert).")] = None,
    no_memory: NoMemoryOpt = False,
    no_knowledge: NoKnowledgeOpt = False,
    expert: ExpertOpt = None,
    session: SessionOpt = None,
) -> None:
    """Answer one question and exit (streams to stdout; --json for scripts; --session to continue a chat)."""
    from evo_tr.engine import generation_config
    from evo_tr.events import dispatch
    from evo_tr.repl import TurnView, sources_lines

    if prompt is None or prompt == "-":
        if sys.stdin.isatty():
            raise EvoError("No question given.", 'Pass it as an argument (evo ask "...") or pipe it on stdin.')
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise EvoError("The question is empty.", 'Give some text, e.g. evo ask "Merhaba!"')
    settings = _settings()
    if system:
        settings.system_prompt = system
        settings.experts.system_prompts = {k: system for k in settings.experts.system_prompts}
    config = generation_config(settings, max_tokens=max_tokens, temperature=temperature, seed=seed)
    orch = _orchestrator(settings, model, config, memory=not no_memory, knowledge=not no_knowledge)
    try:
        current = orch.resume(session) if session else orch.new_session()
        if not as_json:
            for notice in orch.startup_notices:
                err.print(f"[yellow]⚠ {notice.text}[/yellow]")
        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        view = TurnView(say=None if as_json else err.print, token=None if as_json else write)
        events = orch.turn(current.id, prompt, expert=expert)
        try:
            for event in events:
                dispatch(event, view)
        except KeyboardInterrupt:
            events.close()
        stats, routed, recalled = view.stats, view.routed, view.recalled
        if not as_json:
            sys.stdout.write("\n")
            if stats is not None:
                for line in sources_lines(stats.sources):
                    sys.stdout.write(line + "\n")
        elif stats is not None:
            out = {
                "model": model or settings.model,
                "prompt": prompt.strip(),
                **{k: v for k, v in stats.as_dict().items() if k not in ("session_id", "notices")},
                "session": stats.session_id,
                "source": routed.source if routed else None,
                "memories": [h.as_dict() for h in (recalled.memories if recalled else [])],
                "captured": [{"text": c.fact.text, "type": c.fact.type, **c.result.as_dict()} for c in (recalled.captured if recalled else [])],
                "notices": [n.text for n in orch.startup_notices] + view.notices,
            }
            print(json.dumps(out, ensure_ascii=False))
    finally:
        orch.close()
        orch.engine.close()


# -- sessions --------------------------------------------------------------------------
@sessions_app.command("list")
def sessions_list(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20, as_json: JsonOpt = False) -> None:
    """Stored chat sessions, newest first (resume one with `evo chat --session ID`)."""
    from evo_tr.lifecycle import ConversationStore

    sessions = ConversationStore(_settings().conversations_db).list_sessions(limit)
    if as_json:
        print(json.dumps([s.as_dict() for s in sessions], ensure_ascii=False))
        return
    if not sessions:
        console.print("No stored sessions yet.")
        return
    table = Table("id", "updated", "turns", "model", "title")
    for s in sessions:
        table.add_row(s.id, s.updated_at[:16].replace("T", " "), str(s.turns), s.model, s.title[:60])
    console.print(table)


@sessions_app.command("show")
def sessions_show(session_id: Annotated[str, typer.Argument(help="Session id or unique prefix.")], as_json: JsonOpt = False) -> None:
    """Every turn of one session: message, expert, timings, feedback (same as `evo logs show`)."""
    from evo_tr.lifecycle.commands import logs_show

    logs_show(session_id, as_json)


@sessions_app.command("delete")
def sessions_delete(session_id: Annotated[str, typer.Argument(help="Session id or unique prefix.")]) -> None:
    """Delete a stored session and its turns (long-term memories it created stay; see `evo memory forget`)."""
    from evo_tr.lifecycle import ConversationStore

    store = ConversationStore(_settings().conversations_db)
    info = store.find_session(session_id)
    if info is None:
        raise EvoError(f"No session {session_id!r}.", "See `evo sessions list`.")
    store.delete_session(info.id)
    console.print(f"Deleted session {info.id}.")


# -- models ----------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every known model: present or not, size, license, path."""
    from evo_tr.models import ModelStore

    settings = _settings()
    rows = ModelStore(settings.models_dir).list()
    if as_json:
        print(json.dumps([{**r.__dict__, "path": str(r.path), "default": r.name == settings.model} for r in rows], ensure_ascii=False))
        return
    table = Table(title="Models")
    for col in ("name", "present", "size", "license", "source", "path"):
        table.add_column(col)
    for r in rows:
        mark = "[green]yes[/green]" if r.present else "[red]no[/red]"
        size = f"{r.size / 1e6:,.0f} MB" if r.size else "?"
        name = f"{r.name} [bold](default)[/bold]" if r.name == settings.model else r.name
        table.add_row(name, mark, size, r.license, r.source, str(r.path))
    console.print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Registry name (see `evo models list`) or hf:OWNER/REPO/FILE.gguf.")],
    as_name: Annotated[Optional[str], typer.Option("--name", help="Registry name for an hf: reference.")] = None,
) -> None:
    """Provision a model: assemble embedded parts, or download from the Hugging Face Hub (resumable, hash-checked).

    Hub downloads use HF_TOKEN from the environment or ./.env, and HF_ENDPOINT when set.
    """
    from evo_tr.models import ModelStore

    settings = _settings()
    store = ModelStore(settings.models_dir)
    if name.startswith("hf:"):
        name = store.register_hub(name, as_name).name
    spec = store.registry.get(name)
    token = os.environ.get("HF_TOKEN") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    with _byte_progress() as progress:
        task = progress.add_task(f"{name}", total=spec.size)
        path = store.pull(name, progress=lambda n: progress.advance(task, n), token=token, endpoint=endpoint)
    console.print(f"[green]✓[/green] {name} ready at {path}")


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(help="Path of a local .gguf file.")],
    name: Annotated[Optional[str], typer.Option(help="Registry name (default: file stem).")] = None,
    license: Annotated[str, typer.Option(help="License to record.")] = "unknown",
) -> None:
    """Register a local GGUF file (its SHA-256 is pinned so later changes are detected)."""
    from evo_tr.models import ModelStore

    settings = _settings()
    spec = ModelStore(settings.models_dir).add(path, name=name, license=license)
    console.print(f"[green]✓[/green] registered {spec.name} → {path} (use it with --model {spec.name} or model = \"{spec.name}\")")


@models_app.command("remove")
def models_remove(name: str) -> None:
    """Unregister a model added with `evo models add` (the file itself is left alone)."""
    from evo_tr.models import ModelStore

    settings = _settings()
    if not ModelStore(settings.models_dir).registry.remove_user(name):
        raise EvoError(f"'{name}' is not a user-registered model.", "Built-in models cannot be removed; see `evo models list`.")
    console.print(f"removed {name}")


@models_app.command("hf")
def models_hf(
    name: Annotated[Optional[str], typer.Argument(help="Registry name (default: the served model).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a model to Hugging Face format (safetensors + tokenizer) once and print the folder.

    That folder is what vLLM loads as `--model` (`evo adapters publish --print`), and the base the adapters were
    trained on: the GGUF dequantised, so a LoRA served there sees the weights it was trained against."""
    from evo_tr.engine.transformers_peft import hf_base_dir
    from evo_tr.experts import base_info

    settings = _settings()
    base = base_info(settings, name)
    with err.status(f"{base.name} in HF format…"):
        folder = hf_base_dir(settings, base.name, base.path, base.sha256, say=lambda m: err.print(f"[dim]{m}[/dim]"))
    if as_json:
        print(json.dumps({"model": base.name, "hf_dir": str(folder)}, ensure_ascii=False))
    else:
        print(folder)


# -- router ----------------------------------------------------------------------------
DataOpt = Annotated[Optional[Path], typer.Option("--data", help='JSONL file of {"text": ..., "intent": ...} lines.')]


@router_app.command("train")
def router_train(data: DataOpt = None, as_json: JsonOpt = False) -> None:
    """Train from the dataset (80/20 split), save as the next version in the data dir, print validation metrics."""
    from evo_tr.router import train_router

    with err.status("training router (embedding the dataset)…"):
        router, metrics, folder = train_router(_settings(), data)
    summary = {k: v for k, v in metrics.items() if k not in ("errors",)}
    if as_json:
        print(json.dumps({"version": router.meta.version, "path": str(folder), **summary}, ensure_ascii=False))
        return
    console.print(
        f"[green]✓[/green] router v{router.meta.version} saved to {folder}\n"
        f"  validation accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} on {metrics['n']} examples"
    )


@router_app.command("eval")
def router_eval(
    data: Annotated[Optional[Path], typer.Option("--data", help='JSONL of single messages ({"text", "intent"}) or of dialogues '
                                                 '({"turns": [...], "intent"}: the last turn is judged, routed with the earlier ones as context).')] = None,
    as_json: JsonOpt = False,
) -> None:
    """Single-message accuracy, macro-F1, confusion and latency, and follow-up accuracy on dialogues (with the
    conversation vs the same message alone). Default: the held-out splits of the packaged sets."""
    from evo_tr.router import evaluate, evaluate_dialogues, load_router
    from evo_tr.router.context import load_dialogues, split_dialogues
    from evo_tr.router.dataset import load_examples, packaged_path, split

    settings = _settings()
    router = load_router(settings)
    singles = dialogues = None
    if data is None:
        singles = split(load_examples(packaged_path()))[1]
        dialogues = split_dialogues(load_dialogues(None, settings.router.intents))[1]
    elif _is_dialogue_file(data):
        dialogues = load_dialogues(data, settings.router.intents)
    else:
        singles = load_examples(data, settings.router.intents)
    metrics = evaluate(router, singles, latency_runs=3) if singles else {}
    talk = evaluate_dialogues(router, dialogues) if dialogues else None
    if as_json:
        print(json.dumps({"router_version": router.meta.version, **metrics, **({"dialogues": talk} if talk else {})}, ensure_ascii=False))
        return
    if metrics:
        console.print(
            f"single messages: accuracy {metrics['accuracy']:.3f} · macro-F1 {metrics['macro_f1']:.3f} · n={metrics['n']} · "
            f"latency p50 {metrics['latency_ms_p50']} ms, p99 {metrics['latency_ms_p99']} ms"
        )
        table = Table(title="confusion (rows: true, columns: predicted)")
        labels = list(metrics["confusion"])
        table.add_column("")
        for label in labels:
            table.add_column(label[:12])
        for gold in labels:
            table.add_row(gold, *[str(metrics["confusion"][gold][p]) for p in labels])
        console.print(table)
        for e in metrics["errors"][:10]:
            console.print(f"[red]✗[/red] {e['text'][:70]!r}: {e['intent']} → {e['predicted']}")
    if talk:
        console.print(f"follow-ups (last turn of {talk['n']} dialogues): accuracy {talk['follow_up_accuracy']:.3f} with the conversation, "
                      f"{talk['follow_up_accuracy_alone']:.3f} routed alone")
        table = Table(title="follow-ups by kind and language")
        for col in ("", "n", "with the conversation", "alone"):
            table.add_column(col)
        for key, v in talk["by"].items():
            table.add_row(key, str(v["n"]), f"{v['accuracy']:.3f}", f"{v['alone']:.3f}")
        console.print(table)
        for e in talk["errors"][:10]:
            console.print(f"[red]✗[/red] {' / '.join(t[:40] for t in e['turns'])!r}: {e['intent']} → {e['predicted']}")


def _is_dialogue_file(path: Path) -> bool:
    """Dialogues when the first non-empty line is an object with "turns"; anything else is read as single messages."""
    try:
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        row = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # load_examples reports what is wrong with it
    return isinstance(row, dict) and "turns" in row


@router_app.command("predict")
def router_predict(
    text: Annotated[str, typer.Argument(help="The message to route.")],
    after: Annotated[Optional[str], typer.Option("--after", help="The previous message of the conversation: TEXT is routed as its "
                                                   "follow-up (its answer is taken to hold code when it was a code request).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Route one message: intent, confidence, expert, fallback (and follow_up, the gate's probability, with --after)."""
    from evo_tr.router import TurnContext, expert_for, load_router

    settings = _settings()
    router = load_router(settings)
    context = None
    if after is not None:
        prev = router.predict(after)
        context = TurnContext(prev["intent"], float(prev["confidence"]), prev["intent"].startswith("code"))
    pred = router.predict(text, context)
    out = {**pred, "expert": expert_for(settings, pred["intent"])}
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        note = " [yellow](fallback: low confidence)[/yellow]" if pred["fallback"] else ""
        console.print(f"{pred['intent']} ({pred['confidence']:.2f}) → expert [cyan]{out['expert']}[/cyan]{note}")


# -- config / doctor / bench -----------------------------------------------------------
@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Effective settings and where each value came from (default, config file, environment)."""
    settings = _settings()
    rows = describe_settings(settings)
    if as_json:
        print(json.dumps({"config_file": str(config_file_path()), "settings": [r.__dict__ for r in rows]}, ensure_ascii=False))
        return
    table = Table(title=f"Settings (config file: {config_file_path()})")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_column("source")
    for r in rows:
        table.add_row(r.key, str(r.value), r.source)
    console.print(table)


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check Python, RAM, disk, backends, model presence and hash, GPU; say how to fix failures."""
    from evo_tr.doctor import run_checks

    checks = run_checks(_settings())
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, ensure_ascii=False))
    else:
        style = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}
        for c in checks:
            console.print(f"{style[c.status]} {c.name}: {c.detail}")
            if c.fix:
                console.print(f"    [dim]fix:[/dim] {c.fix}")
    if failed:
        raise typer.Exit(1)


@app.command()
def bench(
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this section (repeatable): engine, router, memory, knowledge, experts, turn, serve, ui, night, remote, vllm.")] = None,
    runs: Annotated[Optional[int], typer.Option(help="Repetitions per figure (medians are reported).")] = None,
    memory_size: Annotated[Optional[int], typer.Option(help="Memories in the store for the search-latency figure (default 10000).")] = None,
) -> None:
    """Measure engine speed vs raw llama.cpp, router quality/latency, memory search/recall, adapters, and a whole turn."""
    from evo_tr.bench import SECTIONS, run_bench

    settings = _settings()
    if runs is not None:
        settings.bench.runs = runs
    if memory_size is not None:
        settings.bench.memory_size = memory_size
    for section in only or []:
        if section not in SECTIONS:
            raise EvoError(f"Unknown bench section '{section}'.", f"Choose from: {', '.join(SECTIONS)}.")
    result = run_bench(settings, model or settings.model, only, say=lambda m: err.print(f"[dim]{m}[/dim]"))
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        table = Table(title="evo bench")
        table.add_column("figure")
        table.add_column("value")
        for key, value in result.items():
            table.add_row(key, json.dumps(value, ensure_ascii=False))
        console.print(table)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details to stderr.")] = False,
) -> None:
    from evo_tr.lifecycle.logger import setup_logging

    try:
        setup_logging(load_settings(), verbose=verbose)
    except EvoError:  # a broken config is reported by the command itself
        logging.basicConfig(level=logging.DEBUG if verbose else logging.ERROR)
    if version:
        console.print(f"evo-tr {__version__}")
        raise typer.Exit()


def _data_dir() -> Path:
    try:
        return load_settings().home
    except EvoError:
        return Path(os.environ.get("EVO_HOME", "~")).expanduser()


def main() -> None:
    """Entry point: user mistakes become a short message plus a fix, never a traceback."""
    load_dotenv(dotenv_path=Path.cwd() / ".env", override=False)
    try:
        try:
            app()
        except Exception as exc:  # a write that hit a full disk, in whatever type the library raised it
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise disk_full_error(_data_dir()) from exc
            raise
    except EvoError as exc:
        err.print(f"[red]Error:[/red] {exc.message}")
        if exc.hint:
            err.print(f"[dim]Fix:[/dim] {exc.hint}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/yellow]")
        sys.exit(130)
