"""The interactive terminal chat: prompt with history, streamed Markdown answers, slash commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table

from evo_tr.chat import ChatSession, Turn
from evo_tr.config import Settings
from evo_tr.engine.base import Engine
from evo_tr.errors import EvoError

LIVE_REFRESH_PER_S = 8
ALIASES = {"/exit"}


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[["Repl", str], bool]
    """Returns False to end the chat."""


class Repl:
    """Reads user lines, runs commands or turns, renders answers."""

    def __init__(self, session: ChatSession, settings: Settings, console: Console, model_name: str) -> None:
        self.session = session
        self.settings = settings
        self.console = console
        self.model_name = model_name
        self.commands: dict[str, Command] = {
            c.name: c
            for c in (
                Command("/help", "show this help", Repl._cmd_help),
                Command("/clear", "forget this conversation's history", Repl._cmd_clear),
                Command("/status", "model, context use and last answer's speed", Repl._cmd_status),
                Command("/remember", "/remember TEXT: store TEXT as a long-term fact", Repl._cmd_remember),
                Command("/forget", "/forget QUERY-or-ID: show matching memories and delete them after you confirm", Repl._cmd_forget),
                Command("/memory", "memory statistics and the most recent memories", Repl._cmd_memory),
                Command("/adapters", "loaded LoRA experts and which one answers", Repl._cmd_adapters),
                Command("/switch", "/switch EXPERT|base|auto: force an expert, the bare base model, or let the router pick", Repl._cmd_switch),
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
            f"[bold]EVO-TR[/bold] · model [cyan]{self.model_name}[/cyan] · "
            "[dim]/help for commands, /quit to leave[/dim]"
        )
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
                if not command.run(self, arg.strip()):
                    return
                continue
            self.answer(text)

    # -- answering ----------------------------------------------------------------------
    def answer(self, text: str) -> None:
        try:
            turn = self.session.start(text)
        except KeyboardInterrupt:  # Ctrl-C while recalling memories or evaluating the prompt
            self.console.print("[yellow]⏹ cancelled[/yellow]")
            return
        for captured in turn.captured:
            verb = "already knew" if captured.result.merged else "noted"
            self.console.print(f"[dim]💾 {verb}: {captured.fact.text}[/dim]")
        if turn.recall.hits:
            n = len(turn.recall.hits)
            self.console.print(f"[dim]🧠 recalled {n} memor{'y' if n == 1 else 'ies'}[/dim]")
        if turn.fit.truncated_tokens:
            self.console.print(
                f"[yellow]Your message was too long for the context window: "
                f"{turn.fit.truncated_tokens} tokens from its middle were cut.[/yellow]"
            )
        elif turn.fit.dropped_messages:
            self.console.print(f"[dim]({turn.fit.dropped_messages} oldest messages left out to fit the context)[/dim]")
        try:
            self._render(turn)
        except KeyboardInterrupt:
            turn.completion.close()
            self.console.print("[yellow]⏹ interrupted[/yellow]")
        try:
            self.session.finish(turn)
        except KeyboardInterrupt:  # Ctrl-C while the turn was being saved: the chat goes on
            self.console.print("[yellow]⏹ turn not saved to memory[/yellow]")
        for notice in turn.notices:
            self.console.print(f"[yellow]⚠ {notice}[/yellow]")

    def _render(self, turn: Turn) -> None:
        if not self.console.is_terminal:
            for piece in turn:
                self.console.file.write(piece)
                self.console.file.flush()
            self.console.file.write("\n")
            return
        with Live(Markdown(""), console=self.console, refresh_per_second=LIVE_REFRESH_PER_S, vertical_overflow="visible") as live:
            for _ in turn:
                live.update(Markdown(turn.answer))
        stats = turn.completion.stats
        if stats.decode_tok_s:
            self.console.print(
                f"[dim]{turn.adapter or 'base'} · {stats.completion_tokens} tok · {stats.decode_tok_s:.1f} tok/s · "
                f"first token {1000 * (stats.ttft_s or 0):.0f} ms[/dim]"
            )

    # -- commands -----------------------------------------------------------------------
    def _cmd_help(self, _: str) -> bool:
        table = Table(show_header=False, box=None)
        for c in self.commands.values():
            if c.name not in ALIASES:
                table.add_row(f"[cyan]{c.name}[/cyan]", c.help)
        self.console.print(table)
        return True

    def _cmd_clear(self, _: str) -> bool:
        self.session.clear()
        self.console.print("[dim]History cleared.[/dim]")
        return True

    def _cmd_status(self, _: str) -> bool:
        engine: Engine = self.session.engine
        table = Table(show_header=False, box=None)
        table.add_row("model", self.model_name)
        table.add_row("backend", engine.name)
        table.add_row("context", f"{self.session.history_tokens()} / {engine.n_ctx} tokens in history")
        table.add_row("messages", str(len(self.session.history)))
        if self.session.memory is not None:
            try:
                stats = self.session.memory.store.get_stats()
                table.add_row("memory", f"{stats.total} memories · {stats.backend} · session {self.session.session_id}")
            except Exception as exc:  # status must work even when the store does not
                table.add_row("memory", f"unavailable ({type(exc).__name__})")
        else:
            table.add_row("memory", "off")
        table.add_row("threads", f"{self.settings.engine.n_threads} decode / {self.settings.engine.n_threads_batch} prompt")
        last = self.session.last
        if last and last.completion.stats.decode_tok_s:
            s = last.completion.stats
            table.add_row("last answer", f"{s.completion_tokens} tok, {s.decode_tok_s:.1f} tok/s, TTFT {1000 * (s.ttft_s or 0):.0f} ms")
        self.console.print(table)
        return True

    def _cmd_quit(self, _: str) -> bool:
        return False

    def _cmd_adapters(self, _: str) -> bool:
        engine = self.session.engine
        loaded = engine.adapters()
        self.console.print(f"mode [bold]{self.session.mode}[/bold] · loaded adapters: {', '.join(loaded) or 'none'}")
        table = Table(show_header=False, box=None)
        for intent, expert in sorted(self.session.experts.items()):
            table.add_row(intent, "→", expert, "[green]adapter[/green]" if expert in loaded else "[dim]base model[/dim]")
        self.console.print(table)
        return True

    def _cmd_switch(self, arg: str) -> bool:
        target = arg.strip() or "auto"
        if target not in ("auto", "base") and target not in self.session.engine.adapters():
            loaded = ", ".join(self.session.engine.adapters()) or "none"
            self.console.print(f"[yellow]No adapter loaded for {target!r}.[/yellow] Loaded: {loaded}; or use base / auto.")
            return True
        self.session.mode = target
        self.console.print(f"[dim]answers now come from: {target}[/dim]")
        return True

    # -- memory commands ------------------------------------------------------------------
    def _memory_or_warn(self):
        if self.session.memory is None:
            self.console.print("[yellow]Memory is off[/yellow] (started with --no-memory, memory.enabled = false, or the store could not be opened).")
        return self.session.memory

    def _confirm(self, question: str) -> bool:
        self.console.print(f"{question} [y/N]")
        reply = next(self._input, "")
        return reply.strip().lower() in {"y", "yes", "e", "evet"}

    def _cmd_remember(self, arg: str) -> bool:
        memory = self._memory_or_warn()
        if memory is None:
            return True
        if not arg:
            self.console.print("Usage: /remember TEXT  (e.g. /remember Kızımın adı Elif)")
            return True
        try:
            result = memory.remember(arg, session=self.session.session_id)
        except EvoError as exc:
            self.console.print(f"[red]{exc.message}[/red]")
            return True
        word = "Already known" if result.merged else "Remembered"
        self.console.print(f"[green]{word}[/green] [dim]({result.id[:12]})[/dim]")
        return True

    def _cmd_forget(self, arg: str) -> bool:
        memory = self._memory_or_warn()
        if memory is None:
            return True
        if not arg:
            self.console.print("Usage: /forget QUERY-or-ID  (shows what matches and asks before deleting)")
            return True
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
            deleted = memory.forget([m.id for m in targets])
            self.console.print(f"[green]Deleted {deleted}.[/green]")
        else:
            self.console.print("Kept.")
        return True

    def _cmd_memory(self, _: str) -> bool:
        memory = self._memory_or_warn()
        if memory is None:
            return True
        stats = memory.store.get_stats()
        types = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_type.items())) or "none yet"
        self.console.print(f"[bold]{stats.total}[/bold] memories ({types}) · {stats.backend} · {stats.location}")
        table = Table(show_header=False, box=None)
        for m in memory.store.list(limit=5):
            table.add_row(f"[dim]{m.id[:12]}[/dim]", m.type, m.text.replace("\n", " ")[:100], f"[dim]{m.created_at[:16]}[/dim]")
        self.console.print(table)
        return True
