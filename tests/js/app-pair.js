// Two JS ilp-plugin-btp apps on a moneyd: learn addresses by ILDCP, then on command pay one another, either a
// plain Prepare (B fulfills it) or an ilp-protocol-stream 2.7.1 payment.
// argv: senderUrl receiverUrl. stdin commands: {"cmd":"ping","amount"} | {"cmd":"stream","amount","maxPacket"} |
// {"cmd":"raw","hex"} (send raw bytes as A's ILP packet and print the reply) | {"cmd":"exit"}
'use strict'
const crypto = require('crypto')
const readline = require('readline')
const BtpPlugin = require('ilp-plugin-btp')
const IlpPacket = require('ilp-packet')
const ILDCP = require('ilp-protocol-ildcp')
const { createServer, createConnection } = require('ilp-protocol-stream')

const out = (o) => console.log(JSON.stringify(o))
const [senderUrl, receiverUrl] = process.argv.slice(2)

async function main () {
  const A = new BtpPlugin({ server: senderUrl })
  const B = new BtpPlugin({ server: receiverUrl })
  await Promise.all([A.connect(), B.connect()])
  const infoA = await ILDCP.fetch(A.sendData.bind(A))
  const infoB = await ILDCP.fetch(B.sendData.bind(B))
  const fulfillments = new Map()
  B.registerDataHandler(async (buf) => {
    const p = IlpPacket.deserializeIlpPrepare(buf)
    const f = fulfillments.get(p.executionCondition.toString('hex'))
    if (!f) return IlpPacket.serializeIlpReject({ code: 'F06', triggeredBy: infoB.clientAddress, message: 'unknown', data: Buffer.alloc(0) })
    return IlpPacket.serializeIlpFulfill({ fulfillment: f, data: Buffer.from('pong') })
  })
  out({ event: 'ready', a: infoA, b: infoB })
  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    const cmd = JSON.parse(line)
    try {
      if (cmd.cmd === 'exit') { await Promise.all([A.disconnect(), B.disconnect()]); process.exit(0) }
      if (cmd.cmd === 'ping') {
        const f = crypto.randomBytes(32)
        const c = crypto.createHash('sha256').update(f).digest()
        fulfillments.set(c.toString('hex'), f)
        const reply = IlpPacket.deserializeIlpPacket(await A.sendData(IlpPacket.serializeIlpPrepare({
          amount: String(cmd.amount), destination: cmd.destination || infoB.clientAddress, executionCondition: c,
          expiresAt: new Date(Date.now() + (cmd.expiresInMs || 10000)), data: crypto.randomBytes(16)
        })))
        out({ event: 'ping', type: reply.typeString, code: reply.data.code, message: reply.data.message, triggeredBy: reply.data.triggeredBy, data: (reply.data.data || Buffer.alloc(0)).toString('hex'), ok: reply.type === 13 && reply.data.fulfillment.equals(f) })
      }
      if (cmd.cmd === 'stream') {
        B.deregisterDataHandler()
        const server = await createServer({ plugin: B })
        let received = 0
        server.on('connection', (conn) => conn.on('stream', (s) => { s.setReceiveMax(1e18); s.on('money', (a) => { received += Number(a) }) }))
        const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
        const conn = await createConnection({ plugin: A, destinationAccount, sharedSecret, maximumPacketAmount: String(cmd.maxPacket || 1000) })
        const stream = conn.createStream()
        const t0 = Date.now()
        await stream.sendTotal(String(cmd.amount), { timeout: 120000 })
        out({ event: 'stream', sent: Number(conn.totalSent), delivered: Number(conn.totalDelivered), received, ms: Date.now() - t0 })
      }
    } catch (e) {
      out({ event: cmd.cmd, error: e.message })
    }
  })
}
main().catch((e) => { out({ event: 'fatal', error: e.stack }); process.exit(1) })
