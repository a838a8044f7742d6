#!/usr/bin/env node
// node_echo.js: the benchmark's Node.js reference: the net module's textbook
// echo, socket.pipe(socket), which pauses reading while the socket's write
// side is full and ends the write side after the peer's FIN.
// usage: node node_echo.js [--listen] HOST:PORT
'use strict';
const net = require('net');

const args = process.argv.slice(2).filter((a) => a !== '--listen');
if (args.length !== 1 || args[0].lastIndexOf(':') < 0) {
  console.error('usage: node_echo.js [--listen] HOST:PORT');
  process.exit(64);
}
const spec = args[0];
const host = spec.slice(0, spec.lastIndexOf(':')).replace(/^\[|\]$/g, '');
const port = Number(spec.slice(spec.lastIndexOf(':') + 1));

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => sock.destroy());
  sock.pipe(sock);
});
server.listen({ host, port, backlog: 4096 }, () => {
  const a = server.address();
  const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  process.stderr.write(`listening on ${h}:${a.port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
