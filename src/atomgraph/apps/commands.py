"""Commands the applications add to the ``atomgraph`` command line.

An application defines a typer command function (its arguments annotated as usual) and calls
:func:`register_command`; :mod:`atomgraph.cli.main` adds every registered command when it builds the
command line. The registry lives here, below the CLI, because the applications may not import the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Command:
    """A registered command: its name on the command line, its function and the application."""

    name: str
    function: Callable[..., Any]
    app: str
    settings: dict[str, Any] = field(default_factory=dict)


_COMMANDS: dict[str, Command] = {}


def register_command(function: Callable[..., Any], name: str, app: str, **settings: Any) -> None:
    """Add ``atomgraph NAME`` running ``function``; ``settings`` go to ``typer.Typer.command``."""
    if name in _COMMANDS and _COMMANDS[name].function is not function:
        raise ValueError(f"command {name!r} is already registered by {_COMMANDS[name].app}")
    _COMMANDS[name] = Command(name, function, app, settings)


def registered_commands() -> list[Command]:
    """The registered commands, in registration order."""
    return list(_COMMANDS.values())
