// Usage: spsp-receiver.js <btp-url>
// A JS SPSP receiver as people ran them next to the JS moneyd: ilp-protocol-stream 2.7.1 server on an
// ilp-plugin-btp 1.5.0 client of the router at <btp-url>, and an SPSP endpoint (plain http on 127.0.0.1) that hands
// out a fresh destination_account/shared_secret per query as application/spsp4+json.
// Events: {"event":"ready","url"} then {"event":"money","amount","total"} and {"event":"close","total"}.
'use strict'
const http = require('http')
const BtpPlugin = require('ilp-plugin-btp')
const { createServer } = require('ilp-protocol-stream')

const out = (o) => console.log(JSON.stringify(o))

async function main () {
  const plugin = new BtpPlugin({ server: process.argv[2] })
  const server = await createServer({ plugin })
  let total = 0
  server.on('connection', (conn) => {
    conn.on('stream', (stream) => {
      stream.setReceiveMax(Infinity)
      stream.on('money', (amount) => {
        total += Number(amount)
        out({ event: 'money', amount: String(amount), total: String(total) })
      })
    })
    conn.on('close', () => out({ event: 'close', total: String(total) }))
    conn.on('error', (e) => out({ event: 'conn_error', error: e.message }))
  })
  const web = http.createServer((req, res) => {
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    res.setHeader('Content-Type', 'application/spsp4+json')
    res.end(JSON.stringify({ destination_account: destinationAccount, shared_secret: sharedSecret.toString('base64') }))
  })
  web.listen(0, '127.0.0.1', () => out({ event: 'ready', url: `http://127.0.0.1:${web.address().port}/`, address: server.serverAccount }))
}

main().catch((e) => { out({ event: 'fatal', error: e.stack || String(e) }); process.exit(1) })
