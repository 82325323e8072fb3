// ganache's CLI, bound to the life of the test process that started it.
//
// pytest talks to ganache over HTTP only, but keeps our stdin open: when pytest dies without running its
// finalizers (a crash, kill -9), the pipe closes and this process exits instead of leaking a ganache.
// Arguments are passed to ganache's own CLI (node_modules/ganache/dist/node/cli.js) unchanged.
'use strict'

const path = require('path')

process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()

const cli = path.join(__dirname, 'node_modules', 'ganache', 'dist', 'node', 'cli.js')
process.argv = [process.argv[0], cli, ...process.argv.slice(2)]
require(cli)
