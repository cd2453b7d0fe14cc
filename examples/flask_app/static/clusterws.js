// A small browser client of the ClusterWS v4 protocol (../../../docs/protocol.md):
// events, channels, and the keep-alive answer. The page's realtime code uses it.
'use strict';

class ClusterWSClient {
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.channels = {};
    this.connect();
  }

  connect() {
    this.ws = new WebSocket(this.url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => {
      const names = Object.keys(this.channels);
      if (names.length) this.ws.send(JSON.stringify(['s', 's', names]));  // resubscribe
      this.emitLocal('open');
    };
    this.ws.onclose = (event) => {
      this.emitLocal('close', event.code, event.reason);
      if (event.code !== 1000) setTimeout(() => this.connect(), 1000);  // reconnect
    };
    this.ws.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(data) {
    if (data instanceof ArrayBuffer) {
      // the server's ping, 0x39: answer with 0x41
      if (data.byteLength === 1 && new Uint8Array(data)[0] === 0x39) this.ws.send(new Uint8Array([0x41]));
      return;
    }
    const [kind, param, payload] = JSON.parse(data);
    if (kind === 'e') this.emitLocal(param, payload);
    else if (kind === 'p') {
      for (const [channel, messages] of Object.entries(payload)) {
        const watchers = (this.channels[channel] || {}).watchers || [];
        for (const message of messages) watchers.forEach((fn) => fn(message));
      }
    } else if (kind === 's' && param === 's') {
      for (const [channel, ok] of Object.entries(payload)) this.emitLocal(ok ? 'subscribed' : 'canceled', channel);
    }
  }

  on(event, fn) { (this.listeners[event] = this.listeners[event] || []).push(fn); }

  emitLocal(event, ...args) { (this.listeners[event] || []).forEach((fn) => fn(...args)); }

  send(event, data) { this.ws.send(JSON.stringify(['e', event, data])); }

  subscribe(channel) {
    const entry = this.channels[channel] = this.channels[channel] || { watchers: [] };
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(['s', 's', [channel]]));
    return {
      watch: (fn) => entry.watchers.push(fn),
      publish: (data) => this.ws.send(JSON.stringify(['p', channel, data])),
    };
  }
}
