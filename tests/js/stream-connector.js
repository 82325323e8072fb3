// A real ilp-connector 23.0.2 between two assets, for cross-currency STREAM tests:
//   account "xrp": XRP, scale 6, ilp-plugin-mini-accounts on 127.0.0.1:<xrpPort>, maxPacketAmount <maxPacket>
//   account "usd": USD, scale 4, ilp-plugin-mini-accounts on 127.0.0.1:<usdPort>
// The one-to-one backend with spread <spread> makes 1 XRP-unit worth 10^(4-6) x (1 - spread) USD-units.
// Usage: stream-connector.js <xrpPort> <usdPort> [spread] [maxPacket]
'use strict'
const { createApp } = require('ilp-connector')

const [xrpPort, usdPort] = [Number(process.argv[2]), Number(process.argv[3])]
const spread = Number(process.argv[4] || '0.005')
const maxPacket = process.argv[5] || '100000'
const out = (o) => console.log(JSON.stringify(o))
const balance = { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' }

const app = createApp({
  env: 'test',
  ilpAddress: 'test.connie',
  spread,
  backend: 'one-to-one',
  store: 'memory',
  initialConnectTimeout: 60000,
  disableMiddleware: ['rateLimit'],
  accounts: {
    xrp: {
      relation: 'child',
      plugin: 'ilp-plugin-mini-accounts',
      assetCode: 'XRP',
      assetScale: 6,
      maxPacketAmount: maxPacket,
      balance,
      options: { wsOpts: { host: '127.0.0.1', port: xrpPort } }
    },
    usd: {
      relation: 'child',
      plugin: 'ilp-plugin-mini-accounts',
      assetCode: 'USD',
      assetScale: 4,
      balance,
      options: { wsOpts: { host: '127.0.0.1', port: usdPort } }
    }
  }
})
app.listen()
  .then(() => out({ event: 'ready', xrpPort, usdPort, spread, maxPacket }))
  .catch((e) => { out({ event: 'fatal', error: e.stack }); process.exit(1) })
