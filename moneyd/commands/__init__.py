"""Built-in command groups. Each module here has ``register(app)``; list it in BUILTIN to wire it up."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

BUILTIN: tuple[str, ...] = ("local", "pay", "receive", "status", "service", "config_cmd")


def register_builtin(app: typer.Typer) -> None:
    for name in BUILTIN:
        import_module(f"{__name__}.{name}").register(app)
