// The JS moneyd's connector, as moneyd 4.3.0 builds it (src/index.js startLocal / startConnector), with its admin
// API on 127.0.0.1:<adminPort>: account "local" is ilp-plugin-mini-accounts on 127.0.0.1:<port>; with a parent BTP
// URL, account "parent" is ilp-plugin-btp to it (the uplink). The reference for the shapes of our admin API.
// argv: port adminPort [parentBtpUrl]
'use strict'
const { createApp } = require('ilp-connector')
const port = Number(process.argv[2])
const adminApiPort = Number(process.argv[3])
const parentUrl = process.argv[4]
const local = {
  relation: 'child',
  plugin: 'ilp-plugin-mini-accounts',
  assetCode: 'XRP',
  assetScale: 9,
  balance: { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' },
  options: { wsOpts: { host: '127.0.0.1', port } }
}
const accounts = { local }
const config = {
  spread: 0,
  backend: 'one-to-one',
  store: 'ilp-store-memory',
  initialConnectTimeout: 60000,
  env: 'test',
  adminApi: true,
  adminApiPort,
  accounts
}
if (parentUrl) {
  accounts.parent = {
    relation: 'parent',
    plugin: 'ilp-plugin-btp',
    assetCode: 'XRP',
    assetScale: 9,
    balance: { minimum: '-Infinity', maximum: 'Infinity', settleThreshold: '-Infinity' },
    options: { server: parentUrl }
  }
} else {
  config.ilpAddress = 'private.moneyd'
}
createApp(config).listen()
  .then(() => console.log(JSON.stringify({ event: 'ready', port, adminApiPort })))
  .catch((e) => { console.log(JSON.stringify({ event: 'fatal', error: e.stack })); process.exit(1) })
process.on('SIGTERM', () => process.exit(0))
