'use strict';
// ClusterWS (the browser client) is served by the server itself at /clusterws.js.
const client = new ClusterWS({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/` });
const status = document.getElementById('status');
const list = document.getElementById('messages');
const chat = client.subscribe('chat');

client.on('open', () => { status.textContent = 'connected'; });
client.on('close', (code) => { status.textContent = `disconnected (${code}), retrying…`; });
chat.on('subscribed', () => { status.textContent = 'connected, in #chat'; });
chat.setWatcher((message) => {
  const item = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = message.name;
  item.append(who, ': ', message.text);
  list.append(item);
  item.scrollIntoView();
});
document.getElementById('say').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('text');
  if (input.value.trim()) client.send('say', input.value);
  input.value = '';
});
