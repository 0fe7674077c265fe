// Node's side of the benchmark: `node node_peers.js echo PORT` (net) or
// `node node_peers.js http PORT` (http, keep-alive), both on 127.0.0.1.
'use strict';
const [mode, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!['echo', 'http'].includes(mode) || !(port > 0)) {
  console.error('usage: node node_peers.js echo|http PORT');
  process.exit(2);
}
const page = '<html><body>Hello Twisted</body></html>';
let server;
if (mode === 'echo') {
  server = require('net').createServer({ noDelay: true }, (sock) => {
    sock.on('data', (data) => sock.write(data));
    sock.on('error', () => sock.destroy());
  });
} else {
  server = require('http').createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': page.length });
    res.end(page);
  });
  server.keepAliveTimeout = 600000;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
}
server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`node ${mode} listening on ${port}`);
});
