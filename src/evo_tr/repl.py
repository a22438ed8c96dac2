"""The interactive terminal chat on top of the orchestrator: streamed Markdown answers and slash commands."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table

from evo_tr.config import Settings
from evo_tr.errors import EvoError, disk_full_error, is_disk_full
from evo_tr.events import Done, Handler, Notice, Recalled, Routed, Token, TurnStats, dispatch
from evo_tr.orchestrator import Orchestrator, Session

LIVE_REFRESH_PER_S = 8
ALIASES = {"/exit"}


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[["Repl", str], bool]
    """Returns False to end the chat."""


def recall_summary(event: Recalled) -> str:
    """"recalled 1 memory, 2 reference notes": what this turn's prompt got from memory and knowledge."""
    passages = sum(1 for h in event.memories if h.memory.type == "knowledge" and h.memory.source in ("pack", "document"))
    memories = len(event.memories) - passages
    parts = []
    if memories:
        parts.append(f"{memories} memor{'y' if memories == 1 else 'ies'}")
    if passages:
        parts.append(f"{passages} reference note{'' if passages == 1 else 's'}")
    return "recalled " + ", ".join(parts) if parts else ""


def sources_lines(sources: list[dict]) -> list[str]:
    """The sources under an answer that used reference knowledge: "Kaynaklar:" and one numbered label each."""
    if not sources:
        return []
    return ["Kaynaklar / Sources:"] + [f"  [{i}] {s['label']}  ({s['id']})" for i, s in enumerate(sources, start=1)]


class TurnView(Handler):
    """The one consumer of a turn's events shared by `evo ask` and `evo chat`: it keeps what the turn said
    (routing, recall, notices, figures) and shows notices, what memory did and the answer's sources on `say`
    (dim or yellow lines); tokens are the caller's to show (`evo ask` writes them raw, chat renders Markdown)."""

    def __init__(self, say: Callable[[str], None] | None = None, token: Callable[[str], None] | None = None) -> None:
        self.say = say
        self.token = token
        self.routed: Routed | None = None
        self.recalled: Recalled | None = None
        self.stats: TurnStats | None = None
        self.notices: list[str] = []

    def on_routed(self, event: Routed) -> None:
        self.routed = event

    def on_notice(self, event: Notice) -> None:
        self.notices.append(event.text)
        if self.say:
            self.say(f"[yellow]⚠ {event.text}[/yellow]")

    def on_recalled(self, event: Recalled) -> None:
        self.recalled = event
        if self.say:
            for captured in event.captured:
                self.say(f"[dim]💾 {'already knew' if captured.result.merged else 'noted'}: {captured.fact.text}[/dim]")
            summary = recall_summary(event)
            if summary:
                self.say(f"[dim]🧠 {summary}[/dim]")

    def on_token(self, event: Token) -> None:
        if self.token:
            self.token(event.text)

    def on_done(self, event: Done) -> None:
        self.stats = event.stats


def footer(routed: Routed | None, stats: TurnStats) -> str:
    """The discreet per-answer line: expert, why it was picked, speed."""
    parts = []
    if routed is not None:
        who = routed.expert + ("" if routed.adapter or routed.expert == "base" else " (base model)")
        why = {"router": f"{routed.intent} {routed.confidence:.2f}" + (" · low confidence" if routed.fallback else ""),
               "switch": "/switch", "request": "--expert", "router-failed": "router unavailable"}[routed.source]
        parts.append(f"{who} · {why}")
    if stats.decode_tok_s:
        parts.append(f"{stats.completion_tokens} tok · {stats.decode_tok_s:.1f} tok/s · first token {stats.e2e_ttft_ms or 0:.0f} ms")
    return " · ".join(parts)


class Repl:
    """Reads user lines, runs commands or turns, renders the turn's events."""

    def __init__(self, orch: Orchestrator, session: Session, settings: Settings, console: Console) -> None:
        self.orch = orch
        self.session = session
        self.settings = settings
        self.console = console
        self.verbose = settings.chat.verbose
        self.last: TurnStats | None = None
        self._sigint = False
        self.commands: dict[str, Command] = {
            c.name: c
            for c in (
                Command("/help", "show this help", Repl._cmd_help),
                Command("/new", "start a new session (the current one stays stored)", Repl._cmd_new),
                Command("/sessions", "list stored sessions", Repl._cmd_sessions),
                Command("/resume", "/resume ID: continue a stored session (an id prefix is enough)", Repl._cmd_resume),
                Command("/clear", "forget this conversation's history (the session log stays)", Repl._cmd_clear),
                Command("/status", "model, adapters, memory, session and last answer's speed", Repl._cmd_status),
                Command("/verbose", "show or hide the expert and router confidence under each answer", Repl._cmd_verbose),
                Command("/adapters", "loaded LoRA experts and which intents they serve", Repl._cmd_adapters),
                Command("/switch", "/switch EXPERT|base|auto: force an expert, the bare base model, or let the router pick", Repl._cmd_switch),
                Command("/good", "mark the last answer as good (it may become training data)", Repl._cmd_good),
                Command("/bad", "/bad [REASON]: mark the last answer as wrong", Repl._cmd_bad),
                Command("/fix", "/fix TEXT: give the answer you expected (kept for the night's training proposals)", Repl._cmd_fix),
                Command("/retry", "answer the last message again", Repl._cmd_retry),
                Command("/remember", "/remember TEXT: store TEXT as a long-term fact", Repl._cmd_remember),
                Command("/forget", "/forget QUERY-or-ID: show matching memories and delete them after you confirm", Repl._cmd_forget),
                Command("/memory", "memory statistics and the most recent memories", Repl._cmd_memory),
                Command("/quit", "leave the chat (also /exit, Ctrl-D)", Repl._cmd_quit),
                Command("/exit", "leave the chat", Repl._cmd_quit),
            )
        }

    # -- input -------------------------------------------------------------------------
    def _lines(self) -> Iterator[str]:
        if sys.stdin.isatty():
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory

            self.settings.history_file.parent.mkdir(parents=True, exist_ok=True)
            prompt = PromptSession(history=FileHistory(str(self.settings.history_file)))
            while True:
                try:
                    yield prompt.prompt("› ")
                except KeyboardInterrupt:
                    self.console.print("[dim](Ctrl-C: type /quit or press Ctrl-D to leave)[/dim]")
                except EOFError:
                    return
        else:
            for line in sys.stdin:
                yield line.rstrip("\n")

    def run(self) -> None:
        self._input = self._lines()
        self.console.print(
            f"[bold]EVO-TR[/bold] · model [cyan]{self.orch.model_name}[/cyan] · session [dim]{self.session.id}[/dim] · "
            "[dim]/help for commands, /quit to leave[/dim]"
        )
        for notice in self.orch.startup_notices:
            self.console.print(f"[yellow]⚠ {notice.text}[/yellow]")
        for line in self._input:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                name, _, arg = text.partition(" ")
                command = self.commands.get(name.lower())
                if command is None:
                    valid = ", ".join(self.commands)
                    self.console.print(f"[yellow]Unknown command {name}.[/yellow] Valid commands: {valid}")
                    continue
                try:
                    if not command.run(self, arg.strip()):
                        return
                except EvoError as exc:
                    self.console.print(f"[red]{exc.message}[/red]" + (f" [dim]{exc.hint}[/dim]" if exc.hint else ""))
                continue
            self.answer(text)

    # -- answering ----------------------------------------------------------------------
    def _on_sigint(self, signum, frame) -> None:
        """Ctrl-C: remember it, then interrupt as Python would. The flag survives libraries that turn the
        KeyboardInterrupt into their own error (a native store call), so the answer still stops."""
        self._sigint = True
        raise KeyboardInterrupt

    def _check_sigint(self) -> None:
        if self._sigint:
            raise KeyboardInterrupt

    def answer(self, text: str, events: Iterator | None = None) -> None:
        self._sigint = False
        previous = signal.signal(signal.SIGINT, self._on_sigint) if threading.current_thread() is threading.main_thread() else None
        try:
            self._answer(text, events)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _answer(self, text: str, events: Iterator | None) -> None:
        events = events if events is not None else self.orch.turn(self.session.id, text)
        view = TurnView(say=self.console.print)
        try:
            for event in events:
                self._check_sigint()
                for ev in self._render(event, events) if isinstance(event, Token) else [event]:
                    dispatch(ev, view)
            if view.stats is not None:
                self._done(view.routed, view.stats)
        except KeyboardInterrupt:  # Ctrl-C: the orchestrator keeps the partial answer, marked interrupted
            events.close()
            self.console.print("[yellow]⏹ interrupted[/yellow]")
        except Exception as exc:  # a full disk mid-turn: say so and keep the chat open (the next turn may fit)
            if not is_disk_full(exc):
                raise
            error = disk_full_error(self.orch.settings.home)
            self.console.print(f"[red]{error.message}[/red] [dim]{error.hint}[/dim]")

    def _render(self, first: Token, events: Iterator) -> list:
        """Stream the answer to its end; returns the events that came after the tokens (notices, Done)."""
        answer = first.text
        rest: list = []
        if not self.console.is_terminal:
            self.console.file.write(first.text)
            for event in events:
                self._check_sigint()
                if isinstance(event, Token):
                    self.console.file.write(event.text)
                    self.console.file.flush()
                else:
                    rest.append(event)
            self.console.file.write("\n")
        else:
            with Live(Markdown(answer), console=self.console, refresh_per_second=LIVE_REFRESH_PER_S, vertical_overflow="visible") as live:
                for event in events:
                    self._check_sigint()
                    if isinstance(event, Token):
                        answer += event.text
                        live.update(Markdown(answer))
                    else:
                        rest.append(event)
        return rest

    def _done(self, routed: Routed | None, stats: TurnStats) -> None:
        self.last = stats
        for line in sources_lines(stats.sources):
            self.console.print(f"[dim]{line}[/dim]", highlight=False)
        if self.verbose:
            line = footer(routed, stats)
            if line:
                self.console.print(f"[dim]{line}[/dim]")

    # -- commands -----------------------------------------------------------------------
    def _cmd_help(self, _: str) -> bool:
        table = Table(show_header=False, box=None)
        for c in self.commands.values():
            if c.name not in ALIASES:
                table.add_row(f"[cyan]{c.name}[/cyan]", c.help)
        self.console.print(table)
        return True

    def _cmd_new(self, _: str) -> bool:
        mode = self.session.mode
        self.session = self.orch.new_session()
        self.session.mode = mode
        self.console.print(f"[dim]New session {self.session.id}.[/dim]")
        return True

    def _cmd_sessions(self, _: str) -> bool:
        sessions = self.orch.list_sessions()
        if not sessions:
            self.console.print("No stored sessions yet.")
            return True
        table = Table(show_header=True, box=None)
        for col in ("id", "updated", "turns", "title"):
            table.add_column(col)
        for s in sessions:
            mark = " [green]●[/green]" if s.id == self.session.id else ""
            table.add_row(s.id + mark, s.updated_at[:16].replace("T", " "), str(s.turns), s.title[:60])
        self.console.print(table)
        return True

    def _cmd_resume(self, arg: str) -> bool:
        if not arg:
            self.console.print("Usage: /resume ID  (see /sessions)")
            return True
        self.session = self.orch.resume(arg)
        n = self.session.turns
        self.console.print(f"[dim]Resumed {self.session.id}: {n} turn{'s' if n != 1 else ''}, {len(self.session.history)} messages back in context.[/dim]")
        return True

    def _cmd_clear(self, _: str) -> bool:
        self.session.buffer.clear()
        self.console.print("[dim]History cleared.[/dim]")
        return True

    def _cmd_status(self, _: str) -> bool:
        st = self.orch.status(self.session)
        table = Table(show_header=False, box=None)
        table.add_row("model", f"{st['model']} ({st['backend']}, {st['n_ctx']} ctx)")
        adapters = ", ".join(f"{k} {v}" for k, v in st["adapters"].items()) or "none"
        table.add_row("adapters", adapters + "".join(f" · [yellow]{k}: {v}[/yellow]" for k, v in st["adapter_problems"].items()))
        table.add_row("router", "on" if st["router"] else "[yellow]unavailable[/yellow]")
        mem = st["memory"]
        table.add_row("memory", mem if isinstance(mem, str) else f"{mem['total']} memories · {mem['backend']}")
        kn = st["knowledge"]
        table.add_row("knowledge", kn if isinstance(kn, str) else f"pack {kn['pack_entries']} entries ({kn['pack_version']}) · {kn['documents']} documents")
        if st["memory_queue"]:
            table.add_row("queued", f"{st['memory_queue']} memory writes waiting for the store")
        s = st["session"]
        table.add_row("session", f"{s['id']} · {s['turns']} turns · mode {s['mode']}")
        table.add_row("context", f"{s['history_tokens']} / {st['n_ctx']} tokens in history ({s['history_messages']} messages)")
        table.add_row("threads", f"{self.settings.engine.n_threads} decode / {self.settings.engine.n_threads_batch} prompt")
        if self.last and self.last.decode_tok_s:
            last = self.last
            table.add_row("last answer", f"{last.completion_tokens} tok, {last.decode_tok_s:.1f} tok/s, first token {last.e2e_ttft_ms or 0:.0f} ms, overhead {last.overhead_ms:.0f} ms")
        self.console.print(table)
        return True

    def _cmd_good(self, _: str) -> bool:
        self.orch.feedback(self.session.id, "good")
        self.console.print("[green]👍 noted[/green]")
        return True

    def _cmd_bad(self, arg: str) -> bool:
        self.orch.feedback(self.session.id, "bad", reason=arg)
        self.console.print("[yellow]👎 noted[/yellow]" + (" [dim](/fix TEXT gives the answer you expected)[/dim]" if not arg else ""))
        return True

    def _cmd_fix(self, arg: str) -> bool:
        self.orch.feedback(self.session.id, "fix", text=arg)
        self.console.print("[green]✍ correction kept[/green] [dim](the night turns it into a training proposal)[/dim]")
        return True

    def _cmd_retry(self, _: str) -> bool:
        self.answer("", self.orch.regenerate(self.session.id))
        return True

    def _cmd_verbose(self, arg: str) -> bool:
        self.verbose = {"on": True, "off": False}.get(arg.lower(), not self.verbose)
        self.console.print(f"[dim]expert line under answers: {'on' if self.verbose else 'off'}[/dim]")
        return True

    def _cmd_quit(self, _: str) -> bool:
        return False

    def _cmd_adapters(self, _: str) -> bool:
        loaded = self.orch.engine.adapters()
        self.console.print(f"mode [bold]{self.session.mode}[/bold] · loaded adapters: {', '.join(loaded) or 'none'}")
        table = Table(show_header=False, box=None)
        for intent, expert in sorted(self.settings.router.experts.items()):
            version = self.orch.adapter_versions.get(expert, "")
            table.add_row(intent, "→", expert, f"[green]adapter {version}[/green]" if expert in loaded else "[dim]base model[/dim]")
        self.console.print(table)
        for expert, why in self.orch.adapter_problems.items():
            self.console.print(f"[yellow]{expert}: {why}[/yellow]")
        return True

    def _cmd_switch(self, arg: str) -> bool:
        target = arg.strip() or "auto"
        try:
            self.orch.set_mode(self.session, target)
        except EvoError as exc:
            self.console.print(f"[yellow]{exc.message}[/yellow]")
            return True
        self.console.print(f"[dim]answers now come from: {target}[/dim]")
        return True

    # -- memory commands ------------------------------------------------------------------
    def _memory(self):
        """The memory manager, or None with a message saying why."""
        if self.orch.memory is None:
            self.console.print("[yellow]Memory is off[/yellow] (started with --no-memory or memory.enabled = false).")
            return None
        try:
            return self.orch.memory.get()
        except EvoError as exc:
            self.console.print(f"[yellow]{exc.message}[/yellow]")
            return None

    def _confirm(self, question: str) -> bool:
        self.console.print(f"{question} [y/N]")
        reply = next(self._input, "")
        return reply.strip().lower() in {"y", "yes", "e", "evet"}

    def _cmd_remember(self, arg: str) -> bool:
        if not arg:
            self.console.print("Usage: /remember TEXT  (e.g. /remember Kızımın adı Elif)")
            return True
        memory = self._memory()
        if memory is None:
            return True
        with self.orch.memory.lock:
            result = memory.remember(arg, session=self.session.id)
        word = "Already known" if result.merged else "Remembered"
        self.console.print(f"[green]{word}[/green] [dim]({result.id[:12]})[/dim]")
        return True

    def _cmd_forget(self, arg: str) -> bool:
        if not arg:
            self.console.print("Usage: /forget QUERY-or-ID  (shows what matches and asks before deleting)")
            return True
        memory = self._memory()
        if memory is None:
            return True
        with self.orch.memory.lock:
            targets = memory.find(arg)
        if not targets:
            self.console.print("Nothing matches; nothing deleted.")
            return True
        table = Table(show_header=False, box=None)
        for m in targets:
            table.add_row(f"[dim]{m.id[:12]}[/dim]", m.type, m.text[:120])
        self.console.print(table)
        n = len(targets)
        if self._confirm(f"Delete {n} memor{'y' if n == 1 else 'ies'}?"):
            with self.orch.memory.lock:
                deleted = memory.forget([m.id for m in targets])
            self.console.print(f"[green]Deleted {deleted}.[/green]")
        else:
            self.console.print("Kept.")
        return True

    def _cmd_memory(self, _: str) -> bool:
        memory = self._memory()
        if memory is None:
            return True
        with self.orch.memory.lock:
            stats = memory.store.get_stats()
            recent = memory.store.list(limit=5)
        types = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_type.items())) or "none yet"
        self.console.print(f"[bold]{stats.total}[/bold] memories ({types}) · {stats.backend} · {stats.location}")
        table = Table(show_header=False, box=None)
        for m in recent:
            table.add_row(f"[dim]{m.id[:12]}[/dim]", m.type, m.text.replace("\n", " ")[:100], f"[dim]{m.created_at[:16]}[/dim]")
        self.console.print(table)
        return True
