// A parent ILSP as the JS moneyd users have one: ilp-connector with ilp-plugin-xrp-asym-server 1.8.1 (account
// "child", where moneyd's XRP uplink connects) on an XRP ledger, plus ilp-plugin-mini-accounts (account "apps")
// where payers and payees on the parent's side connect.
// argv: asymPort appsPort xrpServer secret [address] [claimIntervalMs]
'use strict'
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
app.listen()
  .then(() => console.log(JSON.stringify({ event: 'ready', address })))
  .catch((e) => { console.log(JSON.stringify({ event: 'fatal', error: e.stack })); process.exit(1) })
process.on('SIGTERM', () => process.exit(0))
