'use strict';
// permessage-deflate load generator (benchmarks/compression.sh): raw sockets that offer the
// extension (or not). In fan-out, 10 sample subscribers inflate every frame (zlib,
// synchronously) and count messages; the others count frames and bytes only (every
// subscriber of a worker gets the same frames, so each must end with the samples' frame
// count): 1,000 inflaters in the load generator would measure the load generator.
//   node compression.js fanout URL SUBS MSGS SIZE DEFLATE   one publisher, SUBS subscribers of 'bench'
//   node compression.js echo   URL CLIENTS SECONDS SIZE DEFLATE
//   node compression.js idle   URL CONNS DEFLATE            holds CONNS subscribed sockets until stdin ends
// Prints one JSON line.
const net = require('net');
const zlib = require('zlib');
const crypto = require('crypto');

const TAIL = Buffer.from([0, 0, 0xff, 0xff]);
const WORDS = ('the of and to in is you that it he was for on are as with his they at be this have from or one had by ' +
  'word but not what all were we when your can said there use an each which she do how their if will up other about out ' +
  'many then them these so some her would make like him into time has look two more write go see number no way could ' +
  'people my than first water been call who oil its now find long down day did get come made may part').split(' ');

function random(seed) { // mulberry32: the same messages in every run
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function message(i, size) { // a chat-like JSON object of about `size` bytes (64: the bench's): words drawn at random
  const next = random(i + 1);
  const base = { i, user: `user${Math.floor(next() * 9000) + 1000}`, at: 1764720000000 + i * 137 };
  let text = '';
  while (JSON.stringify({ ...base, text }).length < size) { text += (text ? ' ' : '') + WORDS[Math.floor(next() * WORDS.length)]; }
  return { ...base, text };
}

function frame(text, deflate) { // a masked client text frame
  let payload = Buffer.from(text);
  let first = 0x81;
  if (deflate && payload.length >= 64) {
    const out = zlib.deflateRawSync(payload, { finishFlush: zlib.constants.Z_SYNC_FLUSH, level: 1 });
    payload = out.subarray(0, out.length - 4);
    first = 0xc1;
  }
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([first, 0x80 | len]) :
    Buffer.from([first, 0x80 | 126, len >> 8, len & 0xff]);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

function text(first, payload) { // a text frame's message, inflated when compressed
  if (first & 0x40) payload = zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return payload.toString();
}

function connect(url, deflate, onFrame) { // resolves with {sock, bytes()} once the 101 came; onFrame(first, payload)
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0); let open = false; let bytes = 0;
    const state = { sock, bytes: () => bytes };
    sock.on('connect', () => sock.write(`GET / HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      (deflate ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n' : '') + '\r\n'));
    sock.on('error', reject);
    sock.on('data', (chunk) => {
      bytes += chunk.length;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head));
        if (deflate && !/permessage-deflate/i.test(head)) return reject(new Error('not negotiated'));
        open = true; buf = buf.subarray(end + 4); resolve(state);
      }
      while (buf.length >= 2) {
        let len = buf[1] & 0x7f; let at = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10; }
        if (buf.length < at + len) return;
        const first = buf[0];
        let payload = buf.subarray(at, at + len);
        buf = buf.subarray(at + len);
        if ((first & 0x0f) !== 1) continue;
        onFrame(first, payload);
      }
    });
  });
}

const SAMPLES = 10;

async function fanout(url, subs, msgs, size, deflate) {
  const counts = new Array(SAMPLES).fill(0); // messages, samples only
  const frames = new Array(subs).fill(0); // publish frames, everyone
  let subscribed = 0; let doneAt = 0; let samplesDone = 0;
  let resolveDone; const done = new Promise((r) => { resolveDone = r; });
  const check = () => {
    if (doneAt || samplesDone < SAMPLES) return;
    for (let s = 0; s < subs; s++) if (frames[s] !== frames[0]) return;
    doneAt = process.hrtime.bigint(); resolveDone();
  };
  const clients = [];
  for (let s = 0; s < subs; s++) {
    let replied = false;
    clients.push(await connect(url, deflate, (first, payload) => {
      if (!replied) { // the configuration message, then the subscribe reply
        if (text(first, payload).startsWith('["s","s"')) { replied = true; subscribed++; }
        return;
      }
      frames[s]++;
      if (s < SAMPLES) {
        counts[s] += JSON.parse(text(first, payload))[2].bench.length;
        if (counts[s] === msgs) samplesDone++;
      }
      if (samplesDone === SAMPLES) check();
    }));
    clients[s].sock.write(frame('["s","s",["bench"]]', false));
  }
  while (subscribed < subs) await new Promise((r) => setTimeout(r, 10));
  const bytesBefore = clients.reduce((a, c) => a + c.bytes(), 0);
  let publisherReady; const ready = new Promise((r) => { publisherReady = r; });
  // a client publishes only to a channel it is subscribed to (the original's rule)
  const publisher = await connect(url, deflate, (first, payload) => {
    if (text(first, payload).startsWith('["s","s"')) publisherReady();
  });
  publisher.sock.write(frame('["s","s",["bench"]]', false));
  await ready;
  const outgoing = []; for (let i = 0; i < msgs; i++) outgoing.push(frame(JSON.stringify(['p', 'bench', message(i, size)]), deflate));
  const started = process.hrtime.bigint();
  let sent = 0;
  const WINDOW = 50;
  await new Promise((resolve) => {
    const pump = () => {
      while (sent < msgs && sent - counts[SAMPLES - 1] < WINDOW) publisher.sock.write(outgoing[sent++]);
      if (sent < msgs) setImmediate(pump); else resolve();
    };
    pump();
  });
  await Promise.race([done, new Promise((r) => setTimeout(r, 120000))]);
  const seconds = Number((doneAt || process.hrtime.bigint()) - started) / 1e9;
  const complete = !!doneAt && counts.every((c) => c === msgs);
  const deliveries = complete ? subs * msgs : 0;
  const wire = clients.reduce((a, c) => a + c.bytes(), 0) - bytesBefore;
  const bodyBytes = JSON.stringify(message(1, size)).length;
  console.log(JSON.stringify({ scenario: 'fanout', deflate, subs, msgs, size: bodyBytes, complete,
    seconds: +seconds.toFixed(3), deliveries_per_s: Math.round(deliveries / seconds),
    wire_bytes_per_delivery: +(wire / (subs * msgs)).toFixed(1), frames_per_subscriber: frames[0] }));
  for (const c of clients.concat([publisher])) c.sock.destroy();
  process.exit(0);
}

async function echo(url, conns, seconds, size, deflate) {
  let trips = 0; let stop = false;
  const sent = JSON.stringify(['e', 'echo', message(0, size)]);
  const f = frame(sent, deflate);
  const clients = [];
  for (let c = 0; c < conns; c++) {
    const client = await connect(url, deflate, (first, payload) => {
      if (text(first, payload).startsWith('["e","echo"')) { trips++; if (!stop) client.sock.write(f); }
    });
    clients.push(client);
  }
  await new Promise((r) => setTimeout(r, 300));
  const start = trips; const t0 = process.hrtime.bigint();
  for (const c of clients) c.sock.write(f);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const n = trips - start; const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  stop = true;
  console.log(JSON.stringify({ scenario: 'echo', deflate, conns, size: sent.length, round_trips_per_s: Math.round(n / secs) }));
  for (const c of clients) c.sock.destroy();
  process.exit(0);
}

async function idle(url, conns, deflate) {
  const clients = []; let subscribed = 0;
  for (let c = 0; c < conns; c++) {
    const client = await connect(url, deflate, (first, payload) => {
      if (text(first, payload).startsWith('["s","s"')) subscribed++;
    });
    client.sock.write(frame(`["s","s",["room-${c % 100}"]]`, false));
    clients.push(client);
  }
  while (subscribed < conns) await new Promise((r) => setTimeout(r, 10));
  console.log(JSON.stringify({ scenario: 'idle', deflate, subscribed }));
  process.stdin.resume();
  process.stdin.on('end', () => { for (const c of clients) c.sock.destroy(); process.exit(0); });
}

const [mode, url, ...rest] = process.argv.slice(2);
const n = rest.map(Number);
({ fanout: () => fanout(url, n[0], n[1], n[2], !!n[3]), echo: () => echo(url, n[0], n[1], n[2], !!n[3]),
  idle: () => idle(url, n[0], !!n[1]) })[mode]().catch((e) => { console.error(e); process.exit(1); });
