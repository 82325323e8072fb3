// ilp-protocol-stream 2.7.1 (dist/src/stream.js; and the 1.8.9 copies, src/stream.js, under ilp-spsp) assigns `this.closed` in the
// DataAndMoneyStream constructor, but Node >= 18 makes `closed` a getter-only, non-configurable property of
// Readable.prototype, so createStream() throws (interledgerjs issue 284). Once that module is compiled, give
// its class an own `closed` accessor that stores the flag per instance.
'use strict'
const Module = require('module')
const TARGET = /ilp-protocol-stream[\\/](?:dist[\\/])?src[\\/]stream\.js$/

function shadowClosed (exportsObj) {
  const Cls = exportsObj && exportsObj.DataAndMoneyStream
  if (!Cls || Object.prototype.hasOwnProperty.call(Cls.prototype, 'closed')) return
  const flag = new WeakMap()
  Object.defineProperty(Cls.prototype, 'closed', {
    configurable: true,
    get () { return flag.get(this) === true },
    set (v) { flag.set(this, Boolean(v)) }
  })
}

if (!global.__moneydStreamFix) {
  global.__moneydStreamFix = true
  const compileJs = Module._extensions['.js']
  Module._extensions['.js'] = function (module, filename) {
    compileJs(module, filename)
    if (TARGET.test(filename)) shadowClosed(module.exports)
  }
}
