'use strict';
const client = new ClusterWSClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`);
const status = document.getElementById('status');
const list = document.getElementById('messages');
const chat = client.subscribe('chat');

client.on('open', () => { status.textContent = 'connected'; });
client.on('close', (code) => { status.textContent = `disconnected (${code}), retrying…`; });
client.on('subscribed', (channel) => { status.textContent = `connected, in #${channel}`; });
chat.watch((message) => {
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
