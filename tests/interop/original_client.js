// The original ClusterWS v4 JavaScript client (@clusterws/client-js 4.0.0-alpha.2) against our
// server, in Node and in Debian's Chromium: it must see no change from the extensions
// (history, recovery, presence, join/leave), which it never asks for.
//
//   node original_client.js node     WS_URL       (dist/index.js over npm ws)
//   node original_client.js chromium PAGE_URL     (dist/browser/clusterws.js in a page of the server)
//
// JSCLIENT_DIR holds the client (../shared/bench/cws-node/README.md: rebuild-local.sh); it is
// not in this tree and nothing here downloads it. Prints one JSON line per check; exits 1 on a
// failed check.
'use strict';
const fs = require('fs');
const path = require('path');

const [where, target] = process.argv.slice(2);
const JSCLIENT_DIR = process.env.JSCLIENT_DIR;

// Runs where the client is (Node, or the page): every check, resolved with their results.
// Channels: "chat:room" has history, presence and join/leave on the server; "plain" has none.
function checks(ClusterWS, url) {
  const results = [];
  const check = (name, ok, data) => results.push({ check: name, ok: !!ok, data });
  const frames = [];  // every frame the client got: none of the extensions' kinds may be among them
  const open = (query) => new Promise((resolve, reject) => {
    const socket = new ClusterWS({ url: url + (query || ''), autoReconnect: true,
      autoReconnectOptions: { minInterval: 100, maxInterval: 300 } });
    socket.on('error', reject);
    socket.on('open', () => resolve(socket));
  });
  const watchFrames = (socket) => {
    const raw = socket.socket;
    raw.addEventListener('message', (event) => frames.push(typeof event.data === 'string' ? event.data : 'binary'));
  };
  const next = (socket, event) => new Promise((resolve) => socket.on(event, resolve));
  const deadline = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error('timed out: ' + what)), ms))]);
  const subscribed = (channel) => new Promise((resolve) => {
    channel.on('subscribed', () => resolve(true));
    channel.on('canceled', () => resolve(false));
  });
  const received = (channel, count) => new Promise((resolve) => {
    const got = [];
    channel.setWatcher((message) => { got.push(message); if (got.length === count) resolve(got); });
  });

  return (async () => {
    const a = await deadline(open('?user=ann'), 5000, 'open a');
    watchFrames(a);
    check('open', a.readyState === 1);
    const echoed = next(a, 'echo');
    a.send('echo', { hello: 'v4' });
    check('emit', JSON.stringify(await deadline(echoed, 5000, 'echo')) === '{"hello":"v4"}');

    const room = a.subscribe('chat:room');
    const plain = a.subscribe('plain');
    check('subscribe', (await deadline(Promise.all([subscribed(room), subscribed(plain)]), 5000, 'subscribe'))
      .every(Boolean));
    const secret = a.subscribe('private-x');
    check('canceled', (await deadline(subscribed(secret), 5000, 'canceled')) === false);

    // another client joins and leaves the channel with join/leave events: a sees nothing of it
    const b = await deadline(open('?user=bob'), 5000, 'open b');
    const bRoom = b.subscribe('chat:room');
    await deadline(subscribed(bRoom), 5000, 'b subscribed');
    const roomGot = received(room, 3);
    const plainGot = received(plain, 1);
    room.publish({ n: 1 });
    bRoom.publish({ n: 2 });
    a.send('publish', { channel: 'chat:room', data: { n: 3 } });  // a server-side publish
    plain.publish('p');
    const inRoom = await deadline(roomGot, 5000, 'room messages');
    check('publish', inRoom.map((m) => m.n).sort().join() === '1,2,3' && (await deadline(plainGot, 5000, 'plain')) .join() === 'p',
      inRoom);
    bRoom.unsubscribe();
    b.close();

    // the history is on for chat:room (the server says so), and the client never saw an offset
    const history = next(a, 'history');
    a.send('history', { channel: 'chat:room' });
    const kept = await deadline(history, 5000, 'history');
    check('history on', kept.messages.length === 3 && kept.offset === 3, kept);
    const presence = next(a, 'presence');
    a.send('presence', { channel: 'chat:room' });
    const present = await deadline(presence, 5000, 'presence');
    check('presence on', Object.values(present).map((info) => info.user).join() === 'ann', present);

    // a lost connection: the client reconnects and resubscribes (the v4 way: no recovery)
    const resubscribed = subscribed(room);
    const reopened = next(a, 'open');
    a.send('terminate-me', null);
    await deadline(reopened, 10000, 'reconnect');
    watchFrames(a);  // its new WebSocket
    await deadline(resubscribed, 5000, 'resubscribed');
    const afterGot = received(room, 1);
    room.publish({ n: 4 });
    check('after a reconnection', (await deadline(afterGot, 5000, 'after'))[0].n === 4);
    room.unsubscribe();

    const unknown = frames.filter((text) => {
      if (text === 'binary') return false;
      const message = JSON.parse(text);
      return !(Array.isArray(message) && message.length === 3 && (
        message[0] === 'e' || (message[0] === 'p' && message[1] === null) ||
        (message[0] === 's' && (message[1] === 's' || message[1] === 'c'))));
    });
    check('no extension frames', unknown.length === 0 && frames.length > 0, unknown.slice(0, 3));
    a.close();
    return results;
  })().catch((error) => { results.push({ check: 'error', ok: false, data: String(error) }); return results; });
}

async function inNode(url) {
  const WebSocket = require(path.join(JSCLIENT_DIR, 'node_modules', 'ws'));
  global.window = { WebSocket };
  const ClusterWS = require(path.join(JSCLIENT_DIR, 'cwsclient.js'));
  return checks(ClusterWS, url);
}

async function inChromium(pageUrl) {
  const { chromium } = require(path.join(__dirname, '..', 'browser', 'node_modules', 'playwright-core'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(pageUrl);  // a page of the server's origin that does not load our client
    await page.addScriptTag({ content: fs.readFileSync(path.join(JSCLIENT_DIR, 'cwsclient.browser.js'), 'utf8') });
    const url = `ws://${new URL(pageUrl).host}/`;
    return await page.evaluate(`(${checks.toString()})(window.ClusterWS, ${JSON.stringify(url)})`);
  } finally {
    await browser.close();
  }
}

(async () => {
  const results = where === 'chromium' ? await inChromium(target) : await inNode(target);
  results.forEach((result) => console.log(JSON.stringify(result)));
  process.exit(results.length && results.every((result) => result.ok) ? 0 : 1);
})().catch((error) => { console.error(error); process.exit(1); });
