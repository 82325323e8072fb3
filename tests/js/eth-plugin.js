// ilp-plugin-ethereum 3.0.0-beta.20's own claim code, driven over JSON lines, as the oracle for our ETH uplink.
//
// It builds the real plugin (ethers v4 JsonRpcProvider to ganache, explicit contract address), loads one
// account of it, and replaces the plugin's BTP send with a capture: the message an "open" or "pay" makes the
// account send to its peer comes back in the answer as "sent": [{protocolName, contentType, data (utf8)}].
//
// env: ETH_URL, ETH_CONTRACT, ETH_KEY (the plugin's private key), ETH_ROLE (client|server, default server)
// stdin commands (one JSON object a line), each answered by one event line:
//   {"cmd":"load","account":A,"peer":ADDR?}           -> {"event":"loaded","address"}
//   {"cmd":"message","account":A,"protocolData":[...]} account.handleData (data utf8)
//                                                      -> {"event":"handled","reply","incoming","money","ethereumAddress"}
//   {"cmd":"info","account":A,"reply":[...]}           account.fetchEthereumAddress, answered with reply
//                                                      -> {"event":"info","sent","ethereumAddress"}
//   {"cmd":"fund","account":A,"value":WEI}             account.fundOutgoingChannel (open, or deposit)
//                                                      -> {"event":"funded","channel","sent"}
//   {"cmd":"close","account":A}                        account.requestClose (waits up to ~5 s for the claim on
//                                                      chain) -> {"event":"closed","sent","channel"}
//   {"cmd":"pay","account":A,"amount":GWEI}            account.sendMoney -> {"event":"paid","channel","sent"}
//   {"cmd":"verify","claim":{...},"sender":ADDR}       utils/channel isValidClaimSignature -> {"event":"verified","ok"}
//   {"cmd":"sign","key","contractAddress","channelId","value"}  signClaim + sendClaim -> {"event":"signed","data"}
'use strict'

const readline = require('readline')
const BigNumber = require('bignumber.js')
const { ethers } = require('ethers')
const { instantiateSecp256k1 } = require('bitcoin-ts')
const EthereumPlugin = require('ilp-plugin-ethereum').default
const EthereumAccount = require('ilp-plugin-ethereum/build/account').default
const channelUtils = require('ilp-plugin-ethereum/build/utils/channel')

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const fatal = (err) => { out({ event: 'fatal', error: String(err && err.stack || err) }); process.exit(1) }
process.on('unhandledRejection', fatal)

const channelView = (ch) => ch ? {
  channelId: ch.channelId,
  sender: ch.sender,
  receiver: ch.receiver,
  value: ch.value.toString(),
  spent: ch.spent.toString(),
  signature: ch.signature || null,
  disputePeriod: ch.disputePeriod.toString()
} : null

async function main () {
  const secp256k1 = await instantiateSecp256k1()
  const provider = new ethers.providers.JsonRpcProvider(process.env.ETH_URL)
  const plugin = new EthereumPlugin({
    role: process.env.ETH_ROLE || 'server',
    ethereumPrivateKey: process.env.ETH_KEY,
    ethereumProvider: provider,
    contractAddress: process.env.ETH_CONTRACT,
    outgoingDisputePeriod: Number(process.env.ETH_DISPUTE_PERIOD || 34560)
  })
  plugin._secp256k1 = secp256k1 // what connect() does first; we never connect the BTP side
  let money = []
  plugin.registerMoneyHandler(async (amount) => { money.push(amount) })
  plugin.registerDataHandler(async () => { throw new Error('no ILP in this oracle') })
  const waiting = []
  const nextSent = () => new Promise((resolve) => waiting.push(resolve))
  const toProtocolData = (list) => list.map((p) => ({
    protocolName: p.protocolName, contentType: p.contentType, data: Buffer.from(p.data, 'utf8')
  }))
  const fromProtocolData = (list) => (list || []).map((p) => ({
    protocolName: p.protocolName, contentType: p.contentType, data: p.data.toString('utf8')
  }))
  let nextReply = []
  plugin._plugin._sendMessage = async (accountName, message) => {
    const sent = fromProtocolData(message.data.protocolData)
    const resolve = waiting.shift()
    if (resolve) resolve(sent)
    else out({ event: 'unexpected-send', account: accountName, sent })
    const reply = nextReply
    nextReply = []
    return { protocolData: toProtocolData(reply) }
  }

  const accounts = new Map()
  const rl = readline.createInterface({ input: process.stdin })
  out({ event: 'ready', address: plugin._wallet.address })
  for await (const line of rl) {
    if (!line.trim()) continue
    const cmd = JSON.parse(line)
    try {
      if (cmd.cmd === 'load') {
        const account = await plugin._loadAccount(cmd.account)
        if (cmd.peer) account.account.ethereumAddress = cmd.peer
        accounts.set(cmd.account, account)
        out({ event: 'loaded', address: plugin._wallet.address })
      } else if (cmd.cmd === 'message') {
        const account = accounts.get(cmd.account)
        money = []
        const reply = await account.handleData({ requestId: 1, type: 6, data: { protocolData: toProtocolData(cmd.protocolData) } })
        await account.account.incoming.add(async (s) => s) // wait for queued validations to finish
        out({
          event: 'handled',
          reply: fromProtocolData(reply),
          incoming: channelView(account.account.incoming.state),
          money,
          ethereumAddress: account.account.ethereumAddress || null
        })
      } else if (cmd.cmd === 'info') {
        const account = accounts.get(cmd.account)
        nextReply = cmd.reply || []
        const sent = nextSent()
        await account.fetchEthereumAddress()
        out({ event: 'info', sent: await sent, ethereumAddress: account.account.ethereumAddress || null })
      } else if (cmd.cmd === 'fund') {
        const account = accounts.get(cmd.account)
        const sent = nextSent()
        await account.fundOutgoingChannel(new BigNumber(cmd.value))
        out({ event: 'funded', channel: channelView(account.account.outgoing.state), sent: await sent })
      } else if (cmd.cmd === 'close') {
        const account = accounts.get(cmd.account)
        const sent = nextSent()
        await account.requestClose()
        out({ event: 'closed', sent: await sent, channel: channelView(account.account.outgoing.state) })
      } else if (cmd.cmd === 'pay') {
        const account = accounts.get(cmd.account)
        const sent = nextSent()
        await account.sendMoney(String(cmd.amount))
        out({ event: 'paid', channel: channelView(account.account.outgoing.state), sent: await sent })
      } else if (cmd.cmd === 'verify') {
        out({ event: 'verified', ok: channelUtils.isValidClaimSignature(secp256k1, cmd.claim, cmd.sender) })
      } else if (cmd.cmd === 'sign') {
        const fake = { master: { _secp256k1: secp256k1, _wallet: { privateKey: cmd.key } } }
        const signed = EthereumAccount.prototype.signClaim.call(fake, {
          contractAddress: cmd.contractAddress, channelId: cmd.channelId, spent: new BigNumber(cmd.value)
        })
        let data = null
        await EthereumAccount.prototype.sendClaim.call({
          sendMessage: async (m) => { data = m.data.protocolData[0].data.toString('utf8') }
        }, signed)
        out({ event: 'signed', data })
      } else {
        out({ event: 'error', error: `unknown command ${cmd.cmd}` })
      }
    } catch (err) {
      out({ event: 'error', error: String(err && err.stack || err) })
    }
  }
}

main().catch(fatal)
