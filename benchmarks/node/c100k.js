'use strict';
// c100k: CONNS ClusterWS clients, split over PROCS processes, each from its own source
// address (127.0.0.2, .3...: ~28,000 ephemeral ports each), CONCURRENCY connecting at a
// time per process, every one subscribed to the channel "all". Then one publish to "all"
// (every client must get it: delivery time p50/p99/max), then RATE publishes/s for SECONDS
// (deliveries/s and p99). Latency: each message carries its publish time (process.hrtime,
// CLOCK_MONOTONIC, the same clock in every process). Prints one JSON line (failed connections
// counted by their error: ECONNRESET, a timeout...).
// usage: NODE_PATH=... node c100k.js URL CONNS [PROCS] [RATE] [SECONDS]
const { fork } = require('child_process');
const [url, conns = 100000, procs = 8, rate = 10, seconds = 30] = process.argv.slice(2);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
if (process.env.C_CHILD) {
  const WebSocket = require('ws');
  const share = Number(process.env.C_SHARE);
  const localAddress = process.env.C_ADDRESS;
  let next = 0; let confirmed = 0; let failed = 0; let inflight = 0; const errors = {};
  let lat = []; let received = 0;
  const sockets = [];
  const open = () => {
    while (inflight < 500 && next < share) {
      next++; inflight++;
      const ws = new WebSocket(url, { localAddress, handshakeTimeout: 120000, perMessageDeflate: false });
      sockets.push(ws);
      let done = false;
      ws.on('open', () => ws.send('["s","s",["all"]]'));
      ws.on('message', (data, isBinary) => {
        if (isBinary) { if (data.length === 1 && data[0] === 0x39) ws.send(Buffer.from([0x41])); return; }
        const text = data.toString();
        if (!done && text.startsWith('["s","s"')) { done = true; inflight--; confirmed++; report(); open(); return; }
        if (text.startsWith('["p",')) {
          const now = nowMs();
          for (const m of JSON.parse(text)[2].all || []) { received++; lat.push(now - m.t); }
        }
      });
      const fail = (why) => { if (!done) { done = true; inflight--; failed++; errors[why] = (errors[why] || 0) + 1; report(); open(); } };
      ws.on('error', (e) => fail(e.code || e.message));
      ws.on('close', (code) => fail(`closed ${code} before the subscribe reply`));  // (no 'error' then: it would never count)
    }
  };
  const report = () => { if (confirmed + failed === share) process.send({ kind: 'ready', confirmed, failed, errors }); };
  process.on('message', (m) => {
    if (m === 'stats') { process.send({ kind: 'stats', received, lat }); received = 0; lat = []; }
    if (m === 'stop') { for (const ws of sockets) ws.terminate(); process.exit(0); }
  });
  open();
} else {
  const kids = []; let ready = 0; let confirmed = 0; let failed = 0; const errors = {};
  const started = nowMs();
  const waitFor = (kind) => new Promise((resolve) => {
    const got = []; const on = (m) => { if (m.kind === kind) { got.push(m); if (got.length === kids.length) { for (const k of kids) k.off('message', on); resolve(got); } } };
    for (const k of kids) k.on('message', on);
  });
  for (let p = 0; p < Number(procs); p++) {
    const share = Math.floor(Number(conns) / Number(procs)) + (p < Number(conns) % Number(procs) ? 1 : 0);
    kids.push(fork(__filename, [url], { env: { ...process.env, C_CHILD: '1', C_SHARE: String(share), C_ADDRESS: `127.0.0.${p + 2}` } }));
  }
  const pct = (a, q) => { if (!a.length) return null; a.sort((x, y) => x - y); return Math.round(a[Math.min(a.length - 1, Math.floor(q * a.length))] * 10) / 10; };
  (async () => {
    const readies = await waitFor('ready');
    for (const r of readies) {
      confirmed += r.confirmed; failed += r.failed;
      for (const [why, n] of Object.entries(r.errors)) errors[why] = (errors[why] || 0) + n;
    }
    const connectS = (nowMs() - started) / 1000;
    process.stdout.write(JSON.stringify({ phase: 'subscribed', confirmed, failed, errors, connect_s: Math.round(connectS * 10) / 10 }) + '\n');
    const WebSocket = require('ws');
    const pub = new WebSocket(url, { perMessageDeflate: false });
    // it answers the server's pings too: a socket that does not is closed at the second ping
    // (both servers), and the last publishes of the steady phase went nowhere
    pub.on('message', (data, isBinary) => { if (isBinary && data.length === 1 && data[0] === 0x39) pub.send(Buffer.from([0x41])); });
    await new Promise((r) => pub.on('open', r));
    pub.send('["s","s",["all"]]');  // a client publishes to channels it is subscribed to
    await new Promise((r) => setTimeout(r, 1000));
    const collect = async () => { for (const k of kids) k.send('stats'); const s = await waitFor('stats'); let n = 0; let lat = []; for (const x of s) { n += x.received; lat = lat.concat(x.lat); } return { n, lat }; };
    await collect();
    pub.send(JSON.stringify(['p', 'all', { t: nowMs() }]));
    await new Promise((r) => setTimeout(r, 5000));
    const one = await collect();
    const single = { received: one.n, p50_ms: pct(one.lat, 0.5), p99_ms: pct(one.lat, 0.99), max_ms: pct(one.lat, 1) };
    const t0 = nowMs(); let sent = 0;
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        pub.send(JSON.stringify(['p', 'all', { t: nowMs() }])); sent++;
        if (sent >= Number(rate) * Number(seconds)) { clearInterval(timer); resolve(); }
      }, 1000 / Number(rate));
    });
    await new Promise((r) => setTimeout(r, 5000));
    const steady = await collect();
    const span = (nowMs() - t0) / 1000 - 5;
    console.log(JSON.stringify({ clients: Number(conns), confirmed, failed, errors, connect_s: Math.round(connectS * 10) / 10, one_publish: single,
      steady: { publishes: sent, expected: sent * confirmed, received: steady.n, deliveries_per_s: Math.round(steady.n / span),
        p50_ms: pct(steady.lat, 0.5), p99_ms: pct(steady.lat, 0.99), max_ms: pct(steady.lat, 1) } }));
    for (const k of kids) k.send('stop');
    pub.terminate();
    setTimeout(() => process.exit(0), 500);
  })();
}
