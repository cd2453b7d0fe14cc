'use strict';
// Echo latency at a fixed rate (open loop): CLIENTS ClusterWS clients together emit RATE
// "ping" events per second, evenly spaced, whether or not earlier answers came back, and
// time each round trip to its "pong". A server that cannot keep up shows it in the tail.
// usage: NODE_PATH=<bench>/loadgen/node_modules node echo_rate.js URL RATE [SECONDS] [CLIENTS] [PIDS]
// Prints one JSON line: rate asked and achieved, p50/p99/max latency (ms), lost answers,
// and the server's CPU per round trip when PIDS (comma-separated) are given.
const fs = require('fs');
const WebSocket = require('ws');

const [url, rate, seconds = 10, clients = 50, pids = ''] = process.argv.slice(2);
const RATE = Number(rate);
const WARMUP_S = 2;
const pad = 'x'.repeat(18); // the shared load generator's 48-byte echo payload

function serverCpuSeconds() {
  let ticks = 0;
  for (const pid of String(pids).split(',').filter(Boolean)) {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime + stime
  }
  return ticks / 100;
}

const sockets = [];
let opened = 0;
for (let i = 0; i < Number(clients); i++) {
  const ws = new WebSocket(url);
  ws.pending = new Map();
  ws.on('open', () => { if (++opened === Number(clients)) start(); });
  ws.on('message', (data, isBinary) => {
    if (isBinary) { if (data.length === 1 && data[0] === 0x39) ws.send(Buffer.from([0x41])); return; }
    const m = JSON.parse(data);
    if (m[0] !== 'e' || m[1] !== 'pong') return;
    const sent = ws.pending.get(m[2].i);
    if (sent === undefined) return;
    ws.pending.delete(m[2].i);
    if (m[2].i >= measuredFrom) record(process.hrtime.bigint() - sent);
  });
  ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
  sockets.push(ws);
}

const latenciesUs = [];
let measuring = false;
let measuredFrom = Infinity; // the first message sent while measuring: answers to warm-up ones do not count
let answered = 0;
function record(ns) {
  answered++;
  latenciesUs.push(Number(ns) / 1000);
}

function start() {
  const intervalNs = BigInt(Math.round(1e9 / RATE));
  const t0 = process.hrtime.bigint();
  const warmEnd = t0 + BigInt(WARMUP_S * 1e9);
  const end = warmEnd + BigInt(Math.round(Number(seconds) * 1e9));
  let next = t0;
  let seq = 0;
  let sent = 0;
  let cpu0 = 0;
  // A tick sends every message now due (timers are coarse: at 1 ms, 25 per tick at 25k/s).
  const tick = () => {
    const now = process.hrtime.bigint();
    if (!measuring && now >= warmEnd) { measuring = true; measuredFrom = seq; cpu0 = serverCpuSeconds(); }
    while (next <= now && next < end) {
      const ws = sockets[seq % sockets.length];
      ws.pending.set(seq, next);  // latency counts from when the message was due
      ws.send(JSON.stringify(['e', 'ping', { i: seq, p: pad }]));
      if (measuring) sent++;
      seq++;
      next += intervalNs;
    }
    if (now < end) { setImmediate(tick); return; }
    const cpu = measuring ? serverCpuSeconds() - cpu0 : 0;
    setTimeout(() => report(sent, cpu), 1000); // answers still on the way get a second
  };
  tick();
}

function report(sent, cpu) {
  latenciesUs.sort((a, b) => a - b);
  const q = (p) => latenciesUs.length ? latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(p * latenciesUs.length))] / 1000 : null;
  const r3 = (x) => x === null ? null : Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({
    url, rate_asked: RATE, rate_answered: Math.round(answered / Number(seconds)), sent, answered,
    lost: sent - answered, p50_ms: r3(q(0.5)), p99_ms: r3(q(0.99)), max_ms: r3(q(1)),
    server_cpu_us_per_rt: pids && answered ? Math.round((cpu * 1e6 / answered) * 10) / 10 : null,
  }));
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}
