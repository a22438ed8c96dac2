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
        self.console.print(
            f"[bold]EVO-TR[/bold] · model [cyan]{self.model_name}[/cyan] · "
            "[dim]/help for commands, /quit to leave[/dim]"
        )
        for line in self._lines():
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
        turn = self.session.start(text)
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
        self.session.finish(turn)

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
                f"[dim]{stats.completion_tokens} tok · {stats.decode_tok_s:.1f} tok/s · "
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
        table.add_row("threads", f"{self.settings.engine.n_threads} decode / {self.settings.engine.n_threads_batch} prompt")
        last = self.session.last
        if last and last.completion.stats.decode_tok_s:
            s = last.completion.stats
            table.add_row("last answer", f"{s.completion_tokens} tok, {s.decode_tok_s:.1f} tok/s, TTFT {1000 * (s.ttft_s or 0):.0f} ms")
        self.console.print(table)
        return True

    def _cmd_quit(self, _: str) -> bool:
        return False
