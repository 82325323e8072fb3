"""The plain BTP uplink's commands (`btp:configure`, `btp:start`).

Importing this module must stay cheap: the CLI imports every plugin at startup.
"""

from __future__ import annotations

from moneyd.uplink_cli import CommandsPlugin

plugin = CommandsPlugin("btp", "uplink to a parent connector over plain BTP (no settlement)", "uplinks.btp.commands")
