// The JS side of tests/uplinks/xrp/test_oracle.py: computes, with the code the asym server and moneyd-uplink-xrp run,
// the values our uplinks/xrp computes. JSON lines in: {"op": ..., ...}; out: {"event": "r", "ok": true, "value": ...}.
//
// ed25519 comes from Node's crypto and ripple-keypairs (elliptic), never sodium-universal: without the native
// sodium build it falls back to sodium-javascript, which signs garbage. To run the server's OWN claim code
// (_handleClaim, _sendMoneyToAccount) we put a Node-crypto implementation of the four sodium calls it uses in
// require's cache before loading it.
'use strict'
const crypto = require('crypto')
const path = require('path')
const readline = require('readline')
const BtpPacket = require('btp-packet')

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')
const privKey = (seed) => crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
const pubKey = (pub) => crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, pub]), format: 'der', type: 'spki' })
const rawPub = (seed) => crypto.createPublicKey(privKey(seed)).export({ format: 'der', type: 'spki' }).subarray(12)

const sodiumShim = {
  crypto_sign_PUBLICKEYBYTES: 32,
  crypto_sign_SECRETKEYBYTES: 64,
  crypto_sign_BYTES: 64,
  sodium_malloc: (n) => Buffer.alloc(n),
  crypto_sign_seed_keypair (pk, sk, seed) {
    rawPub(seed).copy(pk)
    seed.copy(sk, 0)
    rawPub(seed).copy(sk, 32)
  },
  crypto_sign_detached (sig, msg, sk) {
    crypto.sign(null, msg, privKey(sk.subarray(0, 32))).copy(sig)
  },
  crypto_sign_verify_detached (sig, msg, pk) {
    if (sig.length !== 64 || pk.length !== 32) throw new Error('bad sizes')
    return crypto.verify(null, msg, pubKey(pk), sig)
  }
}
const sodiumPath = require.resolve('sodium-universal', {
  paths: [path.dirname(require.resolve('ilp-plugin-xrp-asym-server'))]
})
require.cache[sodiumPath] = { id: sodiumPath, filename: sodiumPath, loaded: true, exports: sodiumShim }

const { util } = require('ilp-plugin-xrp-paychan-shared')
const ServerPlugin = require('ilp-plugin-xrp-asym-server')
const signPaymentChannelClaim = require('ripple-lib/dist/npm/offline/sign-payment-channel-claim').default
const verifyPaymentChannelClaim = require('ripple-lib/dist/npm/offline/verify-payment-channel-claim').default
const EdDSA = require('elliptic').eddsa
const ed25519 = new EdDSA('ed25519')

const SERVER_SECRET = 'snoPBrXtMeMyMHUVTgbuqAfg1SUTb'
const SERVER_ADDRESS = 'rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh'
const servers = new Map()
function server (scale) {
  if (!servers.has(scale)) {
    const p = new ServerPlugin({
      xrpServer: 'ws://127.0.0.1:9', secret: SERVER_SECRET, address: SERVER_ADDRESS, currencyScale: scale, port: 9
    })
    p._prefix = 'test.parent.'
    p._log = { trace () {}, debug () {}, info () {}, warn () {}, error () {} }
    servers.set(scale, p)
  }
  return servers.get(scale)
}
// A server-side account named `name` whose incoming channel (ours) is `channel` with key `publicKey`.
function account (scale, name, channel, publicKey, amountXrp) {
  const p = server(scale)
  const acct = p._getAccount(p._prefix + name)
  acct._store.setCache(name + ':channel', channel)
  acct._paychan = { publicKey, amount: amountXrp, balance: '0' }
  return acct
}

const ops = {
  b64: ({ s }) => Buffer.from(s, 'base64').toString('hex'),
  token ({ parent, name, secret }) {
    const token = util.hmac(util.hmac('parent_btp_uri', parent + name), secret).toString('hex')
    return { token, url: 'btp+wss://' + name + ':' + token + '@' + parent }
  },
  key ({ secret, address }) {
    const seed = util.hmac(secret, 'ilp-plugin-xrp-stateless' + address)
    return {
      seed: seed.toString('hex'),
      pub_node: rawPub(seed).toString('hex'),
      pub_elliptic: Buffer.from(ed25519.keyFromSecret(seed.toString('hex')).getPublic()).toString('hex')
    }
  },
  channel_id: ({ src, dst, seq }) => util.computeChannelId(src, dst, seq),
  claim ({ seed, channel, drops }) {
    const encoded = util.encodeClaim(String(drops), channel)
    const s = Buffer.from(seed, 'hex')
    return {
      encoded: encoded.toString('hex'),
      sig_node: crypto.sign(null, encoded, privKey(s)).toString('hex'),
      sig_ripple: signPaymentChannelClaim(channel, util.dropsToXrp(drops), 'ED' + seed.toUpperCase())
    }
  },
  verify ({ channel, drops, signature, pub }) {
    const encoded = util.encodeClaim(String(drops), channel)
    return {
      node: crypto.verify(null, encoded, pubKey(Buffer.from(pub, 'hex')), Buffer.from(signature, 'hex')),
      ripple: (() => {
        // elliptic throws (an assertion) on some malformed signatures: that is a refusal too
        try {
          return verifyPaymentChannelClaim(channel, util.dropsToXrp(drops), signature, 'ED' + pub.toUpperCase())
        } catch (e) {
          return false
        }
      })()
    }
  },
  proof ({ seed, channel, account }) {
    const encoded = util.encodeChannelProof(channel, account)
    return {
      encoded: encoded.toString('hex'),
      sig: crypto.sign(null, encoded, privKey(Buffer.from(seed, 'hex'))).toString('hex')
    }
  },
  // What the server's own code makes of an amount in base units: drops, and back.
  drops: ({ amount, scale }) => util.xrpToDrops(server(scale).baseToXrp(amount)),
  to_base: ({ drops, scale }) => server(scale).xrpToBase(util.dropsToXrp(drops)),
  // The BTP frames the asym client sends, built as it builds them (btp-packet serialize).
  btp ({ kind, request_id, seed, channel, account, address, amount, drops }) {
    const octets = BtpPacket.MIME_APPLICATION_OCTET_STREAM
    const message = (protocolData) => BtpPacket.serialize({
      type: BtpPacket.TYPE_MESSAGE, requestId: request_id, data: { protocolData }
    })
    let frame
    if (kind === 'info') {
      frame = message([{ protocolName: 'info', contentType: octets, data: Buffer.from([util.INFO_REQUEST_ALL]) }])
    } else if (kind === 'last_claim') {
      frame = message([{ protocolName: 'last_claim', contentType: octets, data: Buffer.from([]) }])
    } else if (kind === 'channel') {
      const sig = crypto.sign(null, util.encodeChannelProof(channel, account), privKey(Buffer.from(seed, 'hex')))
      const pd = [
        { protocolName: 'channel', contentType: octets, data: Buffer.from(channel, 'hex') },
        { protocolName: 'channel_signature', contentType: octets, data: sig }
      ]
      if (address) pd.push({ protocolName: 'fund_channel', contentType: BtpPacket.MIME_TEXT_PLAIN_UTF8, data: Buffer.from(address) })
      frame = message(pd)
    } else if (kind === 'claim') {
      const signature = crypto.sign(null, util.encodeClaim(String(drops), channel), privKey(Buffer.from(seed, 'hex')))
        .toString('hex').toUpperCase()
      frame = BtpPacket.serialize({
        type: BtpPacket.TYPE_TRANSFER,
        requestId: request_id,
        data: {
          amount: String(amount),
          protocolData: [{
            protocolName: 'claim',
            contentType: BtpPacket.MIME_APPLICATION_JSON,
            data: Buffer.from(JSON.stringify({ amount: String(amount), signature }))
          }]
        }
      })
    }
    return frame.toString('hex')
  },
  // The server's own channel registration (_handleCustomData): our Message (a BTP frame, hex) with `channel`,
  // `channel_signature` and maybe `fund_channel`, for a fresh account `name` whose channel has key `pub`.
  // Only the ledger is stubbed. Returns the reply frame's protocolData, or the server's error.
  async server_channel ({ name, frame, pub, channel_xrp }) {
    const p = server(9)
    p._api.getPaymentChannel = async () => ({
      account: 'rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY', destination: SERVER_ADDRESS, amount: channel_xrp,
      balance: '0', publicKey: 'ED' + pub.toUpperCase(), settleDelay: 3600
    })
    p._store.load = async () => {}
    p._watcher.watch = async () => {}
    p._registerAutoClaim = async () => {}
    p._fundOutgoingChannel = async () => 'CD'.repeat(32)
    const acct = p._getAccount(p._prefix + name)
    acct._state = 2 // ESTABLISHING_CHANNEL: connected, no channel yet
    try {
      const reply = await p._handleCustomData(p._prefix + name, BtpPacket.deserialize(Buffer.from(frame, 'hex')))
      return { accepted: true, state: acct.getStateString(), reply: reply.map(pd => ({ name: pd.protocolName, content_type: pd.contentType, data: pd.data.toString('hex') })) }
    } catch (e) {
      return { accepted: false, error: e.message }
    }
  },
  // The server's _handleClaim on a claim we made: throws (refused) or records it as the account's claim.
  server_claim ({ scale, name, channel, pub, channel_xrp, amount, signature, last }) {
    const acct = account(scale, name, channel, 'ED' + pub.toUpperCase(), channel_xrp)
    acct._store.setCache(name + ':claim', last ? { amount: last } : undefined)
    try {
      server(scale)._handleClaim(acct, { amount, signature })
    } catch (e) {
      return { accepted: false, error: e.message }
    }
    return { accepted: true, best: acct.getIncomingClaim() }
  },
  // The server's _sendMoneyToAccount: the claim protocolData it sends us for `amount` more base units.
  server_pay ({ scale, name, client_channel, outgoing, amount }) {
    const p = server(scale)
    const acct = p._getAccount(p._prefix + name)
    acct._state = 7 // READY
    acct._store.setCache(name + ':client_channel', client_channel)
    acct._store.setCache(name + ':outgoing_balance', outgoing)
    acct._clientPaychan = { amount: '100000000000', balance: '0' } // room enough: no funding tx attempted
    const seed = util.hmac(SERVER_SECRET, 'ilp-plugin-multi-xrp-paychan-channel-keys' + name)
    const [pd] = p._sendMoneyToAccount(amount, p._prefix + name)
    return {
      protocol: pd.protocolName,
      content_type: pd.contentType,
      data: pd.data.toString(),
      pub: rawPub(seed).toString('hex')
    }
  }
}

let queue = Promise.resolve()
console.log(JSON.stringify({ event: 'ready' }))
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line)
  const run = async (r) => {
    try {
      return { ok: true, value: await ops[r.op](r) }
    } catch (e) {
      return { ok: false, error: e.message }
    }
  }
  // one request at a time, in order (the server objects are shared)
  queue = queue.then(async () => {
    if (req.op === 'many') {
      const value = []
      for (const item of req.items) value.push(await run(item))
      console.log(JSON.stringify({ event: 'r', ok: true, value }))
    } else {
      console.log(JSON.stringify({ event: 'r', ...(await run(req)) }))
    }
  })
})
