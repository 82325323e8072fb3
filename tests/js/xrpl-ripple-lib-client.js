// ripple-lib 0.21 as ilp-plugin-xrp-asym-server 1.8.1 uses it, driven by JSON lines (for the ledger emulator tests).
//
// usage: node xrpl-ripple-lib-client.js WS_URL XRP_SECRET
// Modules are resolved from the asym server's own location, so this runs exactly its ripple-lib, its
// ilp-plugin-xrp-paychan-shared (tx submitter, channel ids, claim encoding) and its sodium-universal.
// Commands on stdin, one JSON object a line, each answered by {"event":"result","cmd":...} or
// {"event":"error","cmd":...,"name":...,"message":...}:
//   {"cmd":"getAccountInfo","address":A}      {"cmd":"getServerInfo"}      {"cmd":"getFee"}
//   {"cmd":"submit","fn":"preparePaymentChannelCreate"|...,"params":{...}}  (the tx submitter: waits for validation)
//   {"cmd":"getPaymentChannel","id":ID}       {"cmd":"getTransaction","id":HASH}
//   {"cmd":"sodiumClaim","account":NAME,"channel":ID,"drops":"123"}  (the asym server's claim signing path)
//   {"cmd":"asymAdminInfo","port":P}  (the real IlpPluginAsymServer on this ledger: connect, getAdminInfo)
//   {"cmd":"exit"}
'use strict'
const path = require('path')
const readline = require('readline')
const { createRequire } = require('module')

const asymServer = require.resolve('ilp-plugin-xrp-asym-server/src/index.js', { paths: [path.join(__dirname, 'node_modules')] })
const req = createRequire(asymServer)
const { RippleAPI } = req('ripple-lib')
const sodium = req('sodium-universal')
const { createSubmitter, util } = req('ilp-plugin-xrp-paychan-shared')
const CHANNEL_KEYS = 'ilp-plugin-multi-xrp-paychan-channel-keys' // as in the asym server

const [url, secret] = process.argv.slice(2)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main () {
  const api = new RippleAPI({ server: url })
  const keypairs = req('ripple-keypairs')
  const address = keypairs.deriveAddress(keypairs.deriveKeypair(secret).publicKey)
  api.on('error', (code, message) => out({ event: 'api-error', code, message }))
  // The asym server's _preConnect: connect (subscribes to the ledger stream), then subscribe to its own account.
  await api.connect()
  await api.connection.request({ command: 'subscribe', accounts: [address] })
  const submitter = createSubmitter(api, address, secret)
  const ledgers = []
  api.connection.on('ledgerClosed', (ev) => { ledgers.push(ev.ledger_index) })
  out({
    event: 'ready',
    address,
    ledgerVersion: await api.getLedgerVersion(),
    feeBase: await api.connection.getFeeBase(),
    nativeSodium: sodium.sodium_malloc.toString().includes('[native code]')
  })

  const handlers = {
    getAccountInfo: (m) => api.getAccountInfo(m.address || address),
    getServerInfo: () => api.getServerInfo(),
    getFee: () => api.getFee(),
    getPaymentChannel: (m) => api.getPaymentChannel(m.id),
    getTransaction: (m) => api.getTransaction(m.id),
    hasLedgerVersion: (m) => api.connection.hasLedgerVersion(m.version),
    ledgersSeen: () => ledgers.slice(),
    submit: async (m) => {
      const ev = await submitter.submit(m.fn, m.params)
      const tx = ev.transaction
      const result = { transaction: tx, engineResult: ev.meta && ev.meta.TransactionResult, validated: ev.validated }
      if (m.fn === 'preparePaymentChannelCreate') {
        // what the asym server does next: compute the id from the validated transaction and look the channel up
        result.channelId = util.computeChannelId(tx.Account, tx.Destination, tx.Sequence)
        result.paychan = await api.getPaymentChannel(result.channelId)
      }
      return result
    },
    asymAdminInfo: async (m) => {
      const Plugin = require(path.dirname(path.dirname(asymServer))) // the package's main, as ilp-connector loads it
      const plugin = new Plugin({ xrpServer: url, secret, address, port: m.port, currencyScale: 9, _store: new (req('ilp-store-memory'))() })
      const ILDCP = req('ilp-protocol-ildcp')
      plugin.registerDataHandler(async () => ILDCP.serializeIldcpResponse({ clientAddress: 'test.parent', assetScale: 9, assetCode: 'XRP' }))
      await plugin.connect()
      try {
        return await plugin.getAdminInfo()
      } finally {
        await plugin.disconnect()
      }
    },
    sodiumClaim: (m) => {
      const keyPair = {
        publicKey: sodium.sodium_malloc(sodium.crypto_sign_PUBLICKEYBYTES),
        secretKey: sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES)
      }
      sodium.crypto_sign_seed_keypair(keyPair.publicKey, keyPair.secretKey, util.hmac(secret, CHANNEL_KEYS + m.account))
      const encodedClaim = util.encodeClaim(m.drops, m.channel)
      const signature = sodium.sodium_malloc(sodium.crypto_sign_BYTES)
      sodium.crypto_sign_detached(signature, encodedClaim, keyPair.secretKey)
      return {
        publicKey: 'ED' + keyPair.publicKey.toString('hex').toUpperCase(),
        signature: signature.toString('hex').toUpperCase(),
        message: encodedClaim.toString('hex').toUpperCase()
      }
    }
  }

  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    let msg
    try { msg = JSON.parse(line) } catch (e) { return out({ event: 'error', message: 'bad json' }) }
    if (msg.cmd === 'exit') {
      await api.disconnect()
      process.exit(0)
    }
    const fn = handlers[msg.cmd]
    if (!fn) return out({ event: 'error', cmd: msg.cmd, message: 'unknown command' })
    try {
      out({ event: 'result', cmd: msg.cmd, result: await fn(msg) })
    } catch (err) {
      out({ event: 'error', cmd: msg.cmd, name: err.name, message: err.message, data: err.data })
    }
  })
}

main().catch((err) => {
  out({ event: 'fatal', name: err.name, message: err.message, stack: err.stack })
  process.exit(1)
})
