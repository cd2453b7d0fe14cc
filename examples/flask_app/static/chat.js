'use strict';
// ClusterWS (the browser client) is served by the server itself at /clusterws.js.
const client = new ClusterWS({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/` });
const status = document.getElementById('status');
const list = document.getElementById('messages');
// The page came with the channel's last messages and their position (the view read the history):
// subscribing from that position misses nothing published since the page was rendered, and
// after a reconnection the channel asks for what it missed.
const history = JSON.parse(document.getElementById('history').textContent);
const chat = history.epoch
  ? client.subscribe('chat', { since: { epoch: history.epoch, offset: history.offset } })
  : client.subscribe('chat', { recover: true });

function show(message) {
  const item = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = message.name;
  item.append(who, ': ', message.text);
  list.append(item);
  item.scrollIntoView();
}

history.messages.forEach(show);
client.on('open', () => { status.textContent = 'connected'; });
client.on('close', (code) => { status.textContent = `disconnected (${code}), retrying…`; });
chat.on('subscribed', () => { status.textContent = 'connected, in #chat'; });
chat.on('recovered', (recovered) => {
  if (recovered) return;
  // The history no longer reaches back (it was lost with a restarted server, or trimmed):
  // render the page again from what the server keeps now; at most once a minute.
  const last = Number(sessionStorage.getItem('chat-reloaded') || 0);
  if (Date.now() - last > 60000) {
    sessionStorage.setItem('chat-reloaded', String(Date.now()));
    location.reload();
  } else {
    status.textContent = 'connected; some messages may be missing (reload to see them)';
  }
});
chat.setWatcher(show);
document.getElementById('say').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('text');
  if (input.value.trim()) client.send('say', input.value);
  input.value = '';
});
