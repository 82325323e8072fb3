"""Uplink plugin discovery: each entry point in ``moneyd.uplinks`` names an :class:`UplinkPlugin`, which adds its
commands (``NAME:configure``, ``NAME:start`` …) to the CLI. Cheap to import: the CLI loads it on every start."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import typer

ENTRY_POINT_GROUP = "moneyd.uplinks"


@runtime_checkable
class UplinkPlugin(Protocol):
    """What an entry point in ``moneyd.uplinks`` names."""

    name: str
    summary: str

    def register_commands(self, app: typer.Typer) -> None:
        """Add this uplink's commands (``<name>:configure``, ``<name>:start`` …) to the CLI."""


@dataclass(frozen=True, slots=True)
class PluginLoadError:
    entry_point: str
    error: str


def discover_uplinks() -> tuple[dict[str, UplinkPlugin], list[PluginLoadError]]:
    """Every installed uplink plugin by name, plus the ones that failed to load (a broken third-party
    plugin must not take the whole CLI down)."""
    found: dict[str, UplinkPlugin] = {}
    errors: list[PluginLoadError] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            plugin = obj() if isinstance(obj, type) else obj
            if not isinstance(plugin, UplinkPlugin):
                raise TypeError(f"{ep.value} is not an UplinkPlugin (needs name, summary, register_commands)")
        except Exception as e:  # any import-time failure of a plugin is reported, not raised
            errors.append(PluginLoadError(ep.name, f"{type(e).__name__}: {e}"))
            continue
        if plugin.name in found:
            errors.append(PluginLoadError(ep.name, f"a second uplink named {plugin.name!r}; keeping the first"))
            continue
        found[plugin.name] = plugin
    return found, errors
