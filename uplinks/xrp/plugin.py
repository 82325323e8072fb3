"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup. The
command bodies need xrpl-py; they are imported only when the commands are registered.
"""

from __future__ import annotations

from moneyd.uplink_cli import CommandsPlugin

COMMANDS = ("configure", "start", "info", "topup", "cleanup")

plugin = CommandsPlugin("xrp", "uplink to a parent over XRP payment channels", "uplinks.xrp.commands",
                        needs={"xrpl": "xrpl-py>=5.2,<6"}, stand_ins=COMMANDS)
