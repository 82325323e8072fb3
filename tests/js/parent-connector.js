// A parent: JS ilp-connector 23 with address <address>, whose account "child" is ilp-plugin-mini-accounts 4.2.0
// on 127.0.0.1:<port>. moneyd's BTP uplink and a receiving app both connect there as mini-accounts clients and
// get <address>.child.<base64url(sha256(token))>. Rate limiter off (it is shared by every client of "child").
// argv: port [address]
'use strict'
const { createApp } = require('ilp-connector')
const port = Number(process.argv[2])
const address = process.argv[3] || 'test.parent'
const app = createApp({
  env: 'test',
  ilpAddress: address,
  spread: 0,
  backend: 'one-to-one',
  store: 'memory',
  disableMiddleware: ['rateLimit'],
  accounts: {
    child: {
      relation: 'child',
      plugin: 'ilp-plugin-mini-accounts',
      assetCode: 'XRP',
      assetScale: 9,
      balance: { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' },
      options: { wsOpts: { host: '127.0.0.1', port } }
    }
  }
})
app.listen()
  .then(() => console.log(JSON.stringify({ event: 'ready', address, port })))
  .catch((e) => { console.log(JSON.stringify({ event: 'fatal', error: e.stack })); process.exit(1) })
process.on('SIGTERM', () => process.exit(0))
