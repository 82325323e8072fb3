// A JS ilp-plugin-mini-accounts 4.2.0 server on 127.0.0.1:<port> with address <address>.
// Incoming Prepares whose data is a 32-byte preimage of the condition are fulfilled (data "ok"); others get F06.
// stdin {"cmd":"send","destination","amount","fulfillment": hex} sends a Prepare to a connected client.
'use strict'
const crypto = require('crypto')
const readline = require('readline')
const IlpPacket = require('ilp-packet')
const MiniAccounts = require('ilp-plugin-mini-accounts')

const port = Number(process.argv[2])
const address = process.argv[3] || 'test.mini'
const out = (o) => console.log(JSON.stringify(o))

async function main () {
  const plugin = new MiniAccounts({
    port,
    wsOpts: undefined,
    debugHostIldcpInfo: { clientAddress: address, assetScale: 9, assetCode: 'XRP' }
  })
  plugin.registerDataHandler(async (buf) => {
    const p = IlpPacket.deserializeIlpPrepare(buf)
    out({ event: 'prepare', destination: p.destination, amount: p.amount, data: p.data.toString('hex') })
    if (p.data.length === 32 && crypto.createHash('sha256').update(p.data).digest().equals(p.executionCondition)) {
      return IlpPacket.serializeIlpFulfill({ fulfillment: p.data, data: Buffer.from('ok') })
    }
    return IlpPacket.serializeIlpReject({ code: 'F06', triggeredBy: address, message: 'unexpected payment', data: Buffer.alloc(0) })
  })
  await plugin.connect()
  out({ event: 'ready', port, address })
  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    const cmd = JSON.parse(line)
    if (cmd.cmd !== 'send') return
    try {
      const fulfillment = Buffer.from(cmd.fulfillment, 'hex')
      const reply = await plugin.sendData(IlpPacket.serializeIlpPrepare({
        amount: String(cmd.amount),
        destination: cmd.destination,
        executionCondition: crypto.createHash('sha256').update(fulfillment).digest(),
        expiresAt: new Date(Date.now() + 10000),
        data: fulfillment
      }))
      const r = IlpPacket.deserializeIlpPacket(reply)
      out({ event: 'reply', type: r.typeString, code: r.data.code, fulfillment: r.data.fulfillment && r.data.fulfillment.toString('hex'), data: (r.data.data || Buffer.alloc(0)).toString('hex') })
    } catch (e) {
      out({ event: 'reply', error: e.message })
    }
  })
}
main().catch((e) => { out({ event: 'fatal', error: e.stack }); process.exit(1) })
