// The JS reference codecs as an oracle: ilp-packet 3.1.3, btp-packet 2.2.1, ilp-protocol-ildcp 2.2.3.
// One JSON line per batch on stdin: {"id", "cases": [{"op": "encode"|"decode", "kind", ...}]}
// -> {"event": "results", "id", "results": [...]}; a decode failure gives {"error": message}.
'use strict'
const readline = require('readline')
const IlpPacket = require('ilp-packet')
const Btp = require('btp-packet')
const ILDCP = require('ilp-protocol-ildcp')

const hex = (b) => Buffer.from(b).toString('hex')
const buf = (h) => Buffer.from(h, 'hex')
const pdOut = (pd) => pd.map((p) => ({ name: p.protocolName, type: p.contentType, data: hex(p.data) }))
const pdIn = (pd) => pd.map((p) => ({ protocolName: p.name, contentType: p.type, data: buf(p.data) }))

function encode (c) {
  switch (c.kind) {
    case 'prepare': return IlpPacket.serializeIlpPrepare({ amount: c.amount, expiresAt: new Date(c.expiresAt), executionCondition: buf(c.condition), destination: c.destination, data: buf(c.data) })
    case 'fulfill': return IlpPacket.serializeIlpFulfill({ fulfillment: buf(c.fulfillment), data: buf(c.data) })
    case 'reject': return IlpPacket.serializeIlpReject({ code: c.code, triggeredBy: c.triggeredBy, message: c.message, data: buf(c.data) })
    case 'ildcp': return ILDCP.serializeIldcpResponse({ clientAddress: c.address, assetScale: c.scale, assetCode: c.code })
    case 'btp': {
      const data = { protocolData: pdIn(c.protocolData) }
      if (c.type === Btp.TYPE_TRANSFER) data.amount = c.amount
      if (c.type === Btp.TYPE_ERROR) Object.assign(data, { code: c.code, name: c.name, triggeredAt: new Date(c.triggeredAt), data: buf(c.data).toString() })
      return Btp.serialize({ type: c.type, requestId: c.requestId, data })
    }
  }
  throw new Error('unknown kind ' + c.kind)
}

function decode (c) {
  const b = buf(c.hex)
  switch (c.kind) {
    case 'ilp': {
      const p = IlpPacket.deserializeIlpPacket(b)
      const d = p.data
      if (p.type === 12) return { type: 12, amount: d.amount, expiresAt: d.expiresAt.toISOString(), condition: hex(d.executionCondition), destination: d.destination, data: hex(d.data) }
      if (p.type === 13) return { type: 13, fulfillment: hex(d.fulfillment), data: hex(d.data) }
      return { type: 14, code: d.code, triggeredBy: d.triggeredBy, message: d.message, data: hex(d.data) }
    }
    case 'ildcp': {
      const r = ILDCP.deserializeIldcpResponse(b)
      return { address: r.clientAddress, scale: r.assetScale, code: r.assetCode }
    }
    case 'btp': {
      const p = Btp.deserialize(b)
      const out = { type: p.type, requestId: p.requestId, protocolData: pdOut(p.data.protocolData) }
      if (p.type === Btp.TYPE_TRANSFER) out.amount = p.data.amount
      if (p.type === Btp.TYPE_ERROR) Object.assign(out, { code: p.data.code, name: p.data.name, triggeredAt: p.data.triggeredAt, data: hex(Buffer.from(p.data.data)) })
      return out
    }
  }
  throw new Error('unknown kind ' + c.kind)
}

console.log(JSON.stringify({ event: 'ready' }))
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const batch = JSON.parse(line)
  const results = batch.cases.map((c) => {
    try {
      return c.op === 'encode' ? { hex: hex(encode(c)) } : { value: decode(c) }
    } catch (e) {
      return { error: String(e && e.message) }
    }
  })
  console.log(JSON.stringify({ event: 'results', id: batch.id, results }))
})
