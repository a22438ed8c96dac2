"""`evo users …`: the users of `evo serve`, each with a key of their own (printed once, stored as its SHA-256)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evo_tr.config import API_KEY_ENV, OWNER_NAME, load_settings

app = typer.Typer(help="Users of `evo serve`: each has a key and sees only their own sessions and memories.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]
NameArg = Annotated[str, typer.Argument(help="User name: 1-32 letters, digits, '_' or '-' (stored lower-case).")]


def _users():
    from evo_tr.users.store import UserStore

    return UserStore(load_settings().conversations_db)


def _emit(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False))


def _issued(user, key: str, as_json: bool, what: str) -> None:
    if as_json:
        _emit({"user": user.as_dict(), "key": key})
        return
    err.print(f"{what} [bold]{user.name}[/bold]{' (admin)' if user.admin else ''}. Their key, shown only now "
              "(only its SHA-256 is stored; `evo users key NAME` issues a new one):")
    print(key)
    err.print("[dim]They send `Authorization: Bearer KEY` (OpenAI SDK: api_key=KEY; the web page asks for it). "
              "A running `evo serve` accepts it at once.[/dim]")


@app.command("add")
def add(name: NameArg, admin: Annotated[bool, typer.Option("--admin", help="May manage users, serve adapters, review proposals and read night reports.")] = False,
        as_json: JsonOpt = False) -> None:
    """Add a user and print their key (once)."""
    user, key = _users().add(name, admin=admin)
    _issued(user, key, as_json, "Added")


@app.command("list")
def list_users(as_json: JsonOpt = False) -> None:
    """The users (never their keys)."""
    users = _users().list()
    if as_json:
        _emit({"users": [u.as_dict() for u in users]})
        return
    if not users:
        console.print(f"No users yet: `evo serve` has one user, the owner ({API_KEY_ENV}, or no key on loopback). "
                      "`evo users add NAME` adds one.")
        return
    table = Table("name", "admin", "added", "key issued")
    for u in users:
        table.add_row(u.name, "yes" if u.admin else "", u.created_at[:16].replace("T", " "), u.key_created_at[:16].replace("T", " "))
    console.print(table)
    console.print(f"[dim]{OWNER_NAME}: {API_KEY_ENV} (an admin) and every CLI command; their data is not listed here.[/dim]")


@app.command("key")
def rotate(name: NameArg, as_json: JsonOpt = False) -> None:
    """Give a user a new key; the old one stops working at once."""
    user, key = _users().rotate(name)
    _issued(user, key, as_json, "New key for")


@app.command("remove")
def remove(name: NameArg,
           keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep their sessions and memories (adding the name again gives them back).")] = False,
           as_json: JsonOpt = False) -> None:
    """Remove a user: their key stops working, and their sessions, turns, feedback and memories are erased and
    scrubbed from the files (other users' data stays)."""
    from evo_tr.lifecycle.conversations import ConversationStore
    from evo_tr.users.erase import erase_user_data

    settings = load_settings()
    user = _users().remove(name)
    erased = None
    if not keep_data:
        memory = None
        if settings.memory.enabled:
            from evo_tr.memory.store import MemoryStore

            memory = MemoryStore(settings)
        erased = erase_user_data(settings, user.id, ConversationStore(settings.conversations_db), memory).as_dict()
    if as_json:
        _emit({"name": user.name, "removed": True, "erased": erased})
        return
    console.print(f"Removed [bold]{user.name}[/bold]: their key no longer works.")
    if erased is None:
        console.print("Their data is kept; `evo users add` with the same name gives it back.")
    else:
        console.print(f"Erased {erased['sessions']} sessions, {erased['turns']} turns, {erased['feedback']} feedback, "
                      f"{erased['memories']} memories; scrubbed {len(erased['scrubbed'])} files.")
        for notice in erased["notices"]:
            err.print(f"[yellow]{notice}[/yellow]")
