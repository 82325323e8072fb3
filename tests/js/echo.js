// Smallest helper: proves the harness works (JSON lines out, JSON lines in).
'use strict'
const readline = require('readline')
console.log(JSON.stringify({ event: 'ready', node: process.version }))
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line)
  if (msg.cmd === 'exit') process.exit(msg.code || 0)
  console.log(JSON.stringify({ event: 'echo', msg }))
})
