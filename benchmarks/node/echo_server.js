'use strict';
// Node.js `ws` echo server: the peer of examples/echo_server.py in the benchmarks
// and the Autobahn comparison. Echoes text as text and binary as binary.
// usage: NODE_PATH=<bench>/loadgen/node_modules node echo_server.js PORT
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 9002);
const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`BENCH_READY pid=${process.pid}`));
process.on('SIGTERM', () => process.exit(0));
