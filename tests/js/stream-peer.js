// Usage: stream-peer.js <port> [assetCode assetScale] [external]
// A JS ILP router (ilp-plugin-mini-accounts 4.2.0 on 127.0.0.1:<port>, address test.peer, ILDCP) plus a real
// ilp-protocol-stream 2.7.1 server and client, each on its own ilp-plugin-btp 1.5.0 client of that router.
// Packets between router clients are forwarded by destination prefix, like moneyd local.
// stdin (JSON lines):
//   {"cmd":"server"}                                -> {"event":"server","destination","secret"(hex)}
//   {"cmd":"server_send","amount"}                  -> the server opens a stream to the last client, sendTotal
//   {"cmd":"server_end"} / {"cmd":"server_destroy"} -> end or destroy the last server-side connection
//   {"cmd":"client","destination","secret","amount","data"(hex),"maxPacket"} -> a JS client connects, pays, writes
//   {"cmd":"client_end"}                            -> the JS client ends its connection
// Every stream the JS side accepts gets receiveMax Infinity, reports money/data, and echoes data back.
'use strict'
const readline = require('readline')
const IlpPacket = require('ilp-packet')
const MiniAccounts = require('ilp-plugin-mini-accounts')
const StoreMemory = require('ilp-store-memory')
const BtpPlugin = require('ilp-plugin-btp')
const { createServer, createConnection } = require('ilp-protocol-stream')

const port = Number(process.argv[2])
const assetCode = process.argv[3] || 'XRP'
const assetScale = Number(process.argv[4] || 9)
// "external": no router of our own; the JS peers connect to the router already listening on <port> (our moneyd).
const external = process.argv[5] === 'external'
const out = (o) => console.log(JSON.stringify(o))

function watchStream (who, stream) {
  stream.setReceiveMax(Infinity)
  stream.on('money', (amount) => out({ event: who + '_money', stream: stream.id, amount, total: stream.totalReceived }))
  stream.on('data', (chunk) => {
    out({ event: who + '_data', stream: stream.id, data: chunk.toString('hex') })
    if (chunk.toString() !== 'no-echo') stream.write(Buffer.concat([Buffer.from('echo:'), chunk]))
  })
  stream.on('end', () => out({ event: who + '_stream_end', stream: stream.id }))
  stream.on('error', (e) => out({ event: who + '_stream_error', stream: stream.id, error: e.message }))
}

function watchConnection (who, conn) {
  conn.on('stream', (stream) => {
    out({ event: who + '_stream', stream: stream.id })
    watchStream(who, stream)
  })
  conn.on('error', (e) => out({ event: who + '_error', error: e.message }))
  conn.on('end', () => out({ event: who + '_end' }))
  conn.on('close', () => out({ event: who + '_close', totalReceived: conn.totalReceived, totalSent: conn.totalSent }))
}

async function main () {
  if (!external) {
    // With a store, clients may pick their account name (as moneyd local's apps do): test.peer.<username>.
    const router = new MiniAccounts({
      port,
      debugHostIldcpInfo: { clientAddress: 'test.peer', assetScale, assetCode }
    }, { store: new StoreMemory() })
    router.registerDataHandler(async (data) => {
      try {
        return await router.sendData(data)
      } catch (e) {
        return IlpPacket.serializeIlpReject({ code: 'F02', triggeredBy: 'test.peer', message: e.message, data: Buffer.alloc(0) })
      }
    })
    await router.connect()
  }
  const plugin = (name) => new BtpPlugin({ server: `btp+ws://${name}:${name}-secret@127.0.0.1:${port}` })

  let server = null
  let servers = 0
  let serverConn = null
  let client = null
  out({ event: 'ready', port, address: 'test.peer' })

  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    const cmd = JSON.parse(line)
    try {
      if (cmd.cmd === 'server') {
        // Each server its own account: mini-accounts sends a packet to every socket of an account.
        servers += 1
        server = await createServer({ plugin: plugin(servers === 1 ? 'jsserver' : 'jsserver' + servers) })
        server.on('connection', (conn) => {
          serverConn = conn
          out({ event: 'server_connection' })
          watchConnection('server', conn)
        })
        const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
        out({ event: 'server', destination: destinationAccount, secret: sharedSecret.toString('hex') })
      } else if (cmd.cmd === 'server_send') {
        const stream = serverConn.createStream()
        await stream.sendTotal(cmd.amount)
        out({ event: 'server_sent', stream: stream.id, totalSent: stream.totalSent })
      } else if (cmd.cmd === 'server_end') {
        await serverConn.end()
        out({ event: 'server_ended' })
      } else if (cmd.cmd === 'server_destroy') {
        await serverConn.destroy(new Error(cmd.message || 'going away'))
        out({ event: 'server_destroyed' })
      } else if (cmd.cmd === 'client') {
        const p = plugin('jsclient')
        client = await createConnection({
          plugin: p,
          destinationAccount: cmd.destination,
          sharedSecret: Buffer.from(cmd.secret, 'hex'),
          maximumPacketAmount: cmd.maxPacket
        })
        watchConnection('client', client)
        out({ event: 'client_connected', rate: client.minimumAcceptableExchangeRate })
        const stream = client.createStream()
        watchStream('client', stream)
        if (cmd.data) stream.write(Buffer.from(cmd.data, 'hex'))
        const start = Date.now()
        if (cmd.amount) await stream.sendTotal(cmd.amount, { timeout: 600000 })
        out({ event: 'client_sent', totalSent: client.totalSent, totalDelivered: client.totalDelivered, ms: Date.now() - start })
      } else if (cmd.cmd === 'client_end') {
        await client.end()
        out({ event: 'client_ended' })
      }
    } catch (e) {
      out({ event: 'cmd_error', cmd: cmd.cmd, error: e.message })
    }
  })
}
main().catch((e) => { out({ event: 'fatal', error: e.stack }); process.exit(1) })
