"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup. The
command bodies need web3 and eth-account; they are imported only when the commands are registered.
"""

from __future__ import annotations

from moneyd.uplink_cli import CommandsPlugin

COMMANDS = ("configure", "start", "info", "topup", "cleanup")

plugin = CommandsPlugin("eth", "uplink to a parent over ETH payment channels", "uplinks.eth.commands",
                        needs={"web3": "web3>=7,<9", "eth_account": "eth-account>=0.13"}, stand_ins=COMMANDS)
