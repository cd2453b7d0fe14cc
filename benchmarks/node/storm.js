'use strict';
// A reconnect storm: CONNS ClusterWS clients open at once (no pacing, no concurrency cap),
// split over PROCS forked processes, each from its own source address (127.0.0.2, .3...:
// the ephemeral ports of one address run out near 28,000). Each waits for the server's
// configuration message and holds its socket. Prints one JSON line: opened, failed (by
// error), seconds until every client had its configuration message, then closes them all.
// usage: NODE_PATH=... node storm.js URL CONNS [PROCS] [TIMEOUT_S]
const { fork } = require('child_process');
const [url, conns = 20000, procs = 4, timeoutS = 60] = process.argv.slice(2);
if (process.env.STORM_CHILD) {
  const WebSocket = require('ws');
  const share = Number(process.env.STORM_SHARE);
  const localAddress = process.env.STORM_ADDRESS;
  let done = 0; let opened = 0; const errors = {}; const sockets = [];
  const finish = () => { if (++done === share) process.send({ opened, errors }); };
  for (let i = 0; i < share; i++) {
    const ws = new WebSocket(url, { localAddress, handshakeTimeout: Number(timeoutS) * 1000 });
    sockets.push(ws);
    let counted = false;
    ws.on('message', () => { if (!counted) { counted = true; opened++; finish(); } });
    ws.on('error', (e) => { if (!counted) { counted = true; const k = e.code || e.message; errors[k] = (errors[k] || 0) + 1; finish(); } });
    ws.on('close', () => { if (!counted) { counted = true; errors.closed = (errors.closed || 0) + 1; finish(); } });
  }
  process.on('message', () => { for (const ws of sockets) ws.terminate(); process.exit(0); });
} else {
  const started = process.hrtime.bigint();
  const kids = []; const results = [];
  for (let p = 0; p < Number(procs); p++) {
    const share = Math.floor(Number(conns) / Number(procs)) + (p < Number(conns) % Number(procs) ? 1 : 0);
    const kid = fork(__filename, [url, conns, procs, timeoutS],
      { env: { ...process.env, STORM_CHILD: '1', STORM_SHARE: String(share), STORM_ADDRESS: `127.0.0.${p + 2}` } });
    kid.on('message', (m) => {
      results.push(m);
      if (results.length === kids.length) {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const errors = {}; let opened = 0;
        for (const r of results) { opened += r.opened; for (const k in r.errors) errors[k] = (errors[k] || 0) + r.errors[k]; }
        const failed = Number(conns) - opened;
        console.log(JSON.stringify({ clients: Number(conns), opened, failed, errors, seconds: Math.round(seconds * 100) / 100,
          per_s: Math.round(opened / seconds) }));
        for (const k of kids) k.send('stop');
      }
    });
    kids.push(kid);
  }
}
