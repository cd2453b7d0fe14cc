// Drives the browser client (/clusterws.js) in Debian's headless Chromium for the Python tests.
//
//   node drive.js SCENARIO PAGE_URL
//
// Opens PAGE_URL (a page of the server under test that loads /clusterws.js), runs SCENARIO
// in the page and prints one JSON line per step on stdout; reads commands from stdin where a
// scenario waits for the test (the "reconnect" scenario). Exits non-zero on a page error.
// CHROMIUM overrides the browser's path (default /usr/bin/chromium); nothing downloads one.
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

const [scenario, pageUrl] = process.argv.slice(2);
const say = (step, data) => console.log(JSON.stringify({ step, data }));
const lines = readline.createInterface({ input: process.stdin });
const waitLine = (expected) => new Promise((resolve) => {
  lines.on('line', (line) => { if (line.trim() === expected) resolve(); });
});

const scenarios = {
  // an event to the server and its answer
  async emit(page) {
    say('echo', await page.evaluate(() => new Promise((resolve) => {
      const socket = new ClusterWS({ url: wsUrl() });
      socket.on('open', () => socket.send('echo', { hello: 'browser' }));
      socket.on('echo', (data) => { socket.close(); resolve(data); });
    })));
  },

  // subscribe, then publish to the channel and receive it back
  async pubsub(page) {
    say('message', await page.evaluate(() => new Promise((resolve) => {
      const socket = new ClusterWS({ url: wsUrl() });
      const room = socket.subscribe('room');
      room.setWatcher((message) => { socket.close(); resolve({ message, state: room.state }); });
      room.on('subscribed', () => room.publish({ from: 'browser' }));
    })));
  },

  // permessage-deflate: the browser offers it, the server agrees; 20 publishes to 'digest' arrive whole
  async compressed(page) {
    await page.evaluate(() => new Promise((resolve) => {
      window.got = [];
      window.socket = new ClusterWS({ url: wsUrl() });
      const digest = window.socket.subscribe('digest');
      digest.setWatcher((message) => window.got.push(message));
      digest.on('subscribed', resolve);
    }));
    say('subscribed');
    await page.waitForFunction(() => window.got.length >= 20, null, { timeout: 15000 });
    say('received', await page.evaluate(() => ({
      count: window.got.length, extensions: window.socket._socket.extensions,
      intact: window.got.every((m, i) => m.i === i && m.text.length === 2000),
    })));
    await page.evaluate(() => window.socket.close());
  },

  // onSubscribe declines private-* channels: the channel says 'canceled'
  async canceled(page) {
    say('canceled', await page.evaluate(() => new Promise((resolve) => {
      const socket = new ClusterWS({ url: wsUrl() });
      const secret = socket.subscribe('private-room');
      secret.on('canceled', () => { socket.close(); resolve(secret.state); });
      secret.on('subscribed', () => resolve('subscribed?!'));
    })));
  },

  // the server restarts: the client reconnects with its backoff and subscribes again
  async reconnect(page) {
    await page.evaluate(() => new Promise((resolve) => {
      window.events = [];
      window.socket = new ClusterWS({ url: wsUrl(), autoReconnectOptions: { minInterval: 200, maxInterval: 1000 } });
      const room = window.socket.subscribe('room');
      room.setWatcher((message) => window.events.push(['message', message]));
      room.on('subscribed', () => { window.events.push(['subscribed']); resolve(); });
      window.socket.on('close', (code) => window.events.push(['close', code]));
    }));
    say('subscribed');
    await waitLine('restarted');
    await page.waitForFunction(() => window.events.filter((e) => e[0] === 'subscribed').length >= 2,
      null, { timeout: 15000 });
    say('resubscribed', await page.evaluate(() => window.events));
    await page.waitForFunction(() => window.events.some((e) => e[0] === 'message'), null, { timeout: 10000 });
    say('received', await page.evaluate(() => window.events.filter((e) => e[0] === 'message')));
    await page.evaluate(() => window.socket.close());
  },

  // subscribe with recover: true to feed:live, whose messages ({p, i}) are checked in order; the
  // test kills the page's worker meanwhile, then says how many were published: every one must come
  async recover(page) {
    say('pid', await page.evaluate(() => new Promise((resolve) => {
      window.got = { next: 0, gaps: 0, duplicates: 0, received: 0, recovered: [], closes: [] };
      window.socket = new ClusterWS({ url: wsUrl(), autoReconnectOptions: { minInterval: 100, maxInterval: 300 } });
      const feed = window.socket.subscribe('feed:live', { recover: true });
      feed.setWatcher((message) => {
        const got = window.got;
        got.received += 1;
        if (message.i === got.next) got.next += 1;
        else if (message.i > got.next) { got.gaps += message.i - got.next; got.next = message.i + 1; }
        else got.duplicates += 1;
      });
      feed.on('recovered', (recovered) => window.got.recovered.push(recovered));
      window.socket.on('close', (code) => window.got.closes.push(code));
      window.socket.on('whoami', resolve);
      feed.on('subscribed', () => { if (!window.got.asked) { window.got.asked = true; window.socket.send('whoami', null); } });
    })));
    const published = await new Promise((resolve) => {
      lines.on('line', (line) => { if (line.startsWith('published ')) resolve(Number(line.split(' ')[1])); });
    });
    await page.waitForFunction((count) => window.got.received >= count, published, { timeout: 15000 })
      .catch(() => null);
    say('got', await page.evaluate(() => window.got));
    await page.evaluate(() => window.socket.close());
  },

  // a configuration message promising pings that never come: the client closes with 4001
  async watchdog(page) {
    say('closed', await page.evaluate(() => new Promise((resolve) => {
      const started = Date.now();
      const socket = new ClusterWS({ url: wsUrl('?fake_config=1'), autoReconnect: false });
      socket.on('close', (code) => resolve({ code, after: Date.now() - started }));
    })));
  },

  // every upgrade is refused (verifyConnection): the client keeps trying, but backs off
  async refused(page) {
    say('closes', await page.evaluate(() => new Promise((resolve) => {
      const closes = [];
      const socket = new ClusterWS({ url: wsUrl() });
      socket.on('close', (code) => closes.push(code));
      setTimeout(() => { socket.close(); resolve(closes); }, 3000);
    })));
  },

  // the ES module and the TypeScript declarations are served too
  async module(page) {
    say('module', await page.evaluate(async () => {
      const module = await import('/clusterws.mjs');
      const types = await (await fetch('/clusterws.d.ts')).text();
      return { same: module.default === window.ClusterWS && module.ClusterWS === window.ClusterWS,
        declares: types.includes('export declare class ClusterWS') };
    }));
  },
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync'],
  });
  const errors = [];
  try {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(pageUrl);
    await page.waitForFunction(() => typeof window.ClusterWS === 'function', null, { timeout: 5000 });
    await page.evaluate(() => {
      window.wsUrl = (query) => `ws://${location.host}/${query || ''}`;
    });
    await scenarios[scenario](page);
  } finally {
    await browser.close();
    lines.close();
  }
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
})().catch((error) => { console.error(error); process.exit(1); });
