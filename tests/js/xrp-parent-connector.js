// A parent ILSP as the JS moneyd users have one: ilp-connector with ilp-plugin-xrp-asym-server 1.8.1 (account
// "child", where moneyd's XRP uplink connects) on an XRP ledger, plus ilp-plugin-mini-accounts (account "apps")
// where payers and payees on the parent's side connect.
// argv: asymPort appsPort xrpServer secret [address] [claimIntervalMs]
// stdout: {"event":"ready"}, then {"event":"claim-acked"|"claim-refused","account","amount"} for every claim the
// asym server sends a client (acked: the client answered the Transfer), {"event":"claim-taken"|"claim-bad",
// "account","amount"} for every claim a client sends it.
// stdin (JSON lines): {"cmd":"state","account":A} -> {"event":"state",...}: the asym server's books for A (prepared
// balance, last claim from A, outgoing balance = its own claims to A, owed, the channel amounts it knows).
'use strict'
const readline = require('readline')
const { createApp } = require('ilp-connector')
const keypairs = require('ripple-keypairs')
const [asymPort, appsPort, xrpServer, secret, addressArg, claimInterval] = process.argv.slice(2)
const address = addressArg || keypairs.deriveAddress(keypairs.deriveKeypair(secret).publicKey)
const limits = { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' }
const app = createApp({
  env: 'test',
  ilpAddress: 'test.parent',
  spread: 0,
  backend: 'one-to-one',
  store: 'memory',
  disableMiddleware: ['rateLimit'],
  accounts: {
    child: {
      relation: 'child',
      plugin: 'ilp-plugin-xrp-asym-server',
      assetCode: 'XRP',
      assetScale: 9,
      balance: limits,
      options: {
        port: Number(asymPort),
        xrpServer,
        secret,
        address,
        currencyScale: 9,
        claimInterval: Number(claimInterval || 2000)
      }
    },
    apps: {
      relation: 'child',
      plugin: 'ilp-plugin-mini-accounts',
      assetCode: 'XRP',
      assetScale: 9,
      balance: limits,
      options: { wsOpts: { host: '127.0.0.1', port: Number(appsPort) } }
    }
  }
})
const out = (o) => console.log(JSON.stringify(o))

function instrument (plugin) {
  const call = plugin._call.bind(plugin)
  plugin._call = async (to, msg) => {
    const pd = msg.type === 7 && msg.data.protocolData.find((p) => p.protocolName === 'claim') // 7: TYPE_TRANSFER
    if (!pd) return call(to, msg)
    const account = to.substr(plugin._prefix.length).split('.')[0]
    const amount = JSON.parse(pd.data.toString()).amount
    try {
      const reply = await call(to, msg)
      out({ event: 'claim-acked', account, amount })
      return reply
    } catch (e) {
      out({ event: 'claim-refused', account, amount, error: String(e && e.message) })
      throw e
    }
  }
  const handleMoney = plugin._handleMoney.bind(plugin)
  plugin._handleMoney = (from, btpData) => {
    const account = from.substr(plugin._prefix.length).split('.')[0]
    const pd = btpData.data.protocolData.find((p) => p.protocolName === 'claim')
    const amount = pd ? JSON.parse(pd.data.toString()).amount : null
    try {
      const r = handleMoney(from, btpData)
      out({ event: 'claim-taken', account, amount })
      return r
    } catch (e) {
      out({ event: 'claim-bad', account, amount, error: String(e && e.message) })
      throw e
    }
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const cmd = JSON.parse(line)
    if (cmd.cmd !== 'state') return out({ event: 'error', error: `unknown command ${cmd.cmd}` })
    const plugin = app.getPlugin('child')
    const a = plugin._accounts.get(cmd.account)
    if (!a) return out({ event: 'state', account: cmd.account, known: false })
    const paychan = a.getPaychan()
    const client = a.getClientPaychan()
    out({
      event: 'state',
      account: cmd.account,
      known: true,
      state: a.getStateString(),
      prepared: a.getBalance().toString(),
      lastClaim: a.getIncomingClaim(),
      outgoingBalance: a.getOutgoingBalance().toString(),
      owed: a.getOwedBalance().toString(),
      channelDrops: paychan ? String(Math.round(Number(paychan.amount) * 1e6)) : null,
      clientChannelDrops: client ? String(Math.round(Number(client.amount) * 1e6)) : null
    })
  } catch (e) {
    out({ event: 'error', error: String(e && e.stack || e) })
  }
})

app.listen()
  .then(() => instrument(app.getPlugin('child')))
  .then(() => console.log(JSON.stringify({ event: 'ready', address })))
  .catch((e) => { console.log(JSON.stringify({ event: 'fatal', error: e.stack })); process.exit(1) })
process.on('SIGTERM', () => process.exit(0))
