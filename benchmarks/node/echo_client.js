'use strict';
// Times WebSocket echo round trips of one message size with Node's `ws` client.
// usage: NODE_PATH=<bench>/loadgen/node_modules node echo_client.js URL SIZE ROUNDS [binary]
// Prints one JSON line: {"url", "size", "rounds", "median_ms", "p90_ms", "min_ms"}.
const WebSocket = require('ws');
const [url, size = 1048576, rounds = 15, kind = 'text'] = process.argv.slice(2);
const payload = kind === 'binary' ? Buffer.alloc(Number(size), 7) : 'x'.repeat(Number(size));
const ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
const times = [];
let started = 0;
ws.on('open', () => { started = process.hrtime.bigint(); ws.send(payload, { binary: kind === 'binary' }); });
ws.on('message', (data) => {
  if (data.length !== Number(size)) return; // a configuration message or ping, not the echo
  times.push(Number(process.hrtime.bigint() - started) / 1e6);
  if (times.length < Number(rounds) + 2) {
    started = process.hrtime.bigint();
    ws.send(payload, { binary: kind === 'binary' });
    return;
  }
  const sorted = times.slice(2).sort((a, b) => a - b); // the first two warm up
  const pick = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  console.log(JSON.stringify({ url, size: Number(size), rounds: sorted.length, median_ms: pick(0.5),
    p90_ms: pick(0.9), min_ms: sorted[0] }));
  ws.close();
});
ws.on('error', (err) => { console.error(String(err)); process.exit(1); });
