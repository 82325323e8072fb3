// An ETH parent: JS ilp-connector 23 with address <address> and two child accounts:
//   "eth"   ilp-plugin-ethereum 3.0.0-beta.20 in role server on 127.0.0.1:<ethPort> (moneyd's ETH uplink connects
//           here as a mini-accounts client and gets <address>.eth.<name>), ETH at scale 9 (gwei). Its provider is an
//           ethers v4 JsonRpcProvider to ganache and the contract is given explicitly, as in tests/js/eth-plugin.js;
//           minIncomingChannelAmount is finite so it opens a channel back once ours is linked.
//   "child" ilp-plugin-mini-accounts 4.2.0 on 127.0.0.1:<appPort> for the receiving/sending app (same asset).
// argv: ethPort appPort [address]
// env: ETH_URL, ETH_CONTRACT, ETH_KEY, ETH_OUT_GWEI (channel it opens to us, default 0.05 ETH),
//      ETH_MIN_IN_GWEI (default 1), ETH_WATCH_MS (channel watcher interval, default 60000)
// stdout: {"event":"ready",...}, then claim-acked / claim-refused events (below).
// stdin commands (JSON lines): {"cmd":"state"} -> {"event":"state","accounts":{name:{...}}}
//                              {"cmd":"requestClose","account":A} -> {"event":"requestClose","ok"} (asks us to claim)
'use strict'
const readline = require('readline')
const { createApp } = require('ilp-connector')
const { ethers } = require('ethers')
const EthereumPlugin = require('ilp-plugin-ethereum').default

const out = (o) => console.log(JSON.stringify(o))
const [ethPort, appPort] = process.argv.slice(2, 4).map(Number)
const address = process.argv[4] || 'test.parent'

const view = (ch) => ch ? {
  channelId: ch.channelId,
  sender: ch.sender,
  receiver: ch.receiver,
  value: ch.value.toString(),
  spent: ch.spent ? ch.spent.toString() : null,
  disputePeriod: ch.disputePeriod.toString()
} : null

const ethPlugin = new EthereumPlugin({
  role: 'server',
  ethereumPrivateKey: process.env.ETH_KEY,
  ethereumProvider: new ethers.providers.JsonRpcProvider(process.env.ETH_URL),
  contractAddress: process.env.ETH_CONTRACT,
  outgoingChannelAmount: Number(process.env.ETH_OUT_GWEI || 5e7),
  minIncomingChannelAmount: Number(process.env.ETH_MIN_IN_GWEI || 1),
  channelWatcherInterval: Number(process.env.ETH_WATCH_MS || 60000),
  wsOpts: { host: '127.0.0.1', port: ethPort }
})

const app = createApp({
  env: 'test',
  ilpAddress: address,
  spread: 0,
  backend: 'one-to-one',
  store: 'memory',
  disableMiddleware: ['rateLimit'],
  accounts: {
    eth: { relation: 'child', plugin: ethPlugin, assetCode: 'ETH', assetScale: 9 },
    child: {
      relation: 'child',
      plugin: 'ilp-plugin-mini-accounts',
      assetCode: 'ETH',
      assetScale: 9,
      balance: { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' },
      options: { wsOpts: { host: '127.0.0.1', port: appPort } }
    }
  }
})

// Every claim the plugin sends a client, and whether the client acknowledged it (a BTP Response, not an Error):
// {"event":"claim-acked"|"claim-refused","account","value"}. The crash test checks that no acknowledged claim is lost.
const sendMessage = ethPlugin._plugin._sendMessage.bind(ethPlugin._plugin)
ethPlugin._plugin._sendMessage = async (accountName, message) => {
  const machinomy = message.data.protocolData.find((p) => p.protocolName === 'machinomy')
  const value = machinomy ? JSON.parse(machinomy.data.toString()).value : null
  try {
    const reply = await sendMessage(accountName, message)
    if (machinomy) out({ event: 'claim-acked', account: accountName, value })
    return reply
  } catch (e) {
    if (machinomy) out({ event: 'claim-refused', account: accountName, value, error: String(e && e.message) })
    throw e
  }
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  let cmd
  try { cmd = JSON.parse(line) } catch (e) { return out({ event: 'error', error: 'not JSON' }) }
  try {
    if (cmd.cmd === 'state') {
      const accounts = {}
      for (const [name, account] of ethPlugin._accounts) {
        const a = account.account
        accounts[name] = {
          ethereumAddress: a.ethereumAddress || null,
          receivableBalance: a.receivableBalance.toString(),
          payableBalance: a.payableBalance.toString(),
          incoming: view(a.incoming.state),
          outgoing: view(a.outgoing.state)
        }
      }
      out({ event: 'state', address: ethPlugin._wallet.address, accounts })
    } else if (cmd.cmd === 'requestClose') {
      await ethPlugin._accounts.get(cmd.account).requestClose()
      out({ event: 'requestClose', ok: true })
    } else {
      out({ event: 'error', error: `unknown command ${cmd.cmd}` })
    }
  } catch (e) {
    out({ event: 'error', error: String(e && e.stack || e) })
  }
})

app.listen()
  .then(() => out({ event: 'ready', address, ethPort, appPort, ethereumAddress: ethPlugin._wallet.address }))
  .catch((e) => { out({ event: 'fatal', error: e.stack }); process.exit(1) })
process.on('SIGTERM', () => process.exit(0))
process.on('unhandledRejection', (e) => console.error('unhandledRejection', e))
