/*
 * clusterws.js: the browser client of clusterws-gevent, served by the server at /clusterws.js
 * (and as an ES module at /clusterws.mjs; TypeScript declarations at /clusterws.d.ts).
 *
 * Drop-in compatible with the original ClusterWS v4 client's API:
 *
 *   const socket = new ClusterWS({ url: 'wss://example.com' });
 *   socket.on('open', () => socket.send('hello', { name: 'ann' }));
 *   socket.on('hello', (data) => console.log(data));
 *   const chat = socket.subscribe('chat');
 *   chat.on('subscribed', () => chat.publish('hi all'));
 *   chat.setWatcher((message) => console.log(message));
 *
 * and, beyond the original: recovery (socket.subscribe(name, { recover: true }): after a
 * reconnection the channel gets what it missed, in order, then a 'recovered' event with true,
 * or false when the server's history no longer reaches back; join/leave events on channels
 * with join_leave), reconnection with a capped, jittered backoff (never a tight
 * loop, even when every upgrade is refused: a browser reports a refused upgrade and a dead
 * server alike, as 1006), automatic resubscription after a reconnection, and the ping
 * watchdog (the connection is closed with 4001 when the server's ping is over 500 ms late,
 * and then reconnected).
 *
 * Wire protocol: ../../docs/protocol.md (JSON arrays, binary 0x39 ping / 0x41 pong).
 */
(function (root) {
  'use strict';

  var PING = 0x39;
  var PONG = new Uint8Array([0x41]);
  var WATCHDOG_SLACK_MS = 500;

  function Emitter() {
    this._listeners = {};
  }
  Emitter.prototype.on = function (event, listener) {
    if (typeof listener !== 'function') throw new TypeError('listener of "' + event + '" must be a function');
    (this._listeners[event] = this._listeners[event] || []).push(listener);
    return this;
  };
  Emitter.prototype.off = function (event, listener) {
    var list = this._listeners[event] || [];
    this._listeners[event] = listener ? list.filter(function (l) { return l !== listener; }) : [];
    return this;
  };
  Emitter.prototype._emit = function (event) {
    var list = this._listeners[event];
    if (!list || !list.length) return false;
    var args = Array.prototype.slice.call(arguments, 1);
    list.slice().forEach(function (listener) {
      try {
        listener.apply(null, args);
      } catch (error) {
        setTimeout(function () { throw error; });  // reported, never breaks the client
      }
    });
    return true;
  };

  /** A channel: subscribe() returns it; the same object lives across reconnections. */
  function Channel(client, name, recover) {
    Emitter.call(this);
    this.client = client;
    this.name = name;
    this.state = 'subscribing';  // 'subscribing' | 'subscribed' | 'canceled' | 'unsubscribed'
    this.recover = !!recover;  // ask for missed messages on each resubscription
    this.epoch = null;  // the position of the last message delivered (recover only)
    this.offset = 0;
    this.recovered = null;  // null until a resubscription asked; then whether every missed message came
    this._asking = false;  // a recovery request is out: positioned messages wait for its reply
    this._watcher = null;
  }
  Channel.prototype = Object.create(Emitter.prototype);
  Channel.prototype.constructor = Channel;
  /** Call listener(message) for every message published to this channel. */
  Channel.prototype.setWatcher = function (listener) {
    if (typeof listener !== 'function') throw new TypeError('the watcher must be a function');
    this._watcher = listener;
    return this;
  };
  Channel.prototype.watch = Channel.prototype.setWatcher;  // the v3 client's name
  Channel.prototype.removeWatcher = function () { this._watcher = null; return this; };
  /** Publish to this channel (the server accepts it once the subscription is confirmed). */
  Channel.prototype.publish = function (data) {
    this.client._sendRaw(JSON.stringify(['p', this.name, data]));
    return this;
  };
  Channel.prototype.unsubscribe = function () {
    if (this.state === 'unsubscribed') return;
    this.state = 'unsubscribed';
    delete this.client._channels[this.name];
    this.client._sendRaw(JSON.stringify(['s', 'u', this.name]));
  };
  Channel.prototype._answer = function (accepted) {
    if (this.state === 'unsubscribed') return;
    this.state = accepted ? 'subscribed' : 'canceled';
    if (!accepted) delete this.client._channels[this.name];
    this._emit(accepted ? 'subscribed' : 'canceled');
  };
  Channel.prototype._deliver = function (message) {
    if (this._watcher) this._watcher(message);
  };
  Channel.prototype._position = function () {
    return this.epoch === null ? null : [this.epoch, this.offset];
  };
  /** The answer to ['s','r',...]: false, or { epoch, offset, recovered, publications: [[offset, message]] }. */
  Channel.prototype._recoveryAnswer = function (answer) {
    this._asking = false;
    if (!answer || typeof answer !== 'object') { this._answer(false); return; }
    var asked = this.epoch !== null;
    var recovered = answer.recovered === true;
    if (recovered && Array.isArray(answer.publications)) {
      for (var i = 0; i < answer.publications.length; i++) {
        var item = answer.publications[i];
        if (Array.isArray(item) && item[0] > this.offset) { this.offset = item[0]; this._deliver(item[1]); }
      }
    }
    if (typeof answer.epoch === 'string' && typeof answer.offset === 'number') {
      this.epoch = answer.epoch; this.offset = answer.offset;
    } else {
      this.epoch = null; this.offset = 0;  // no position to hold: the next message gives one
    }
    this._answer(true);
    if (asked) { this.recovered = recovered; this._emit('recovered', recovered); }
  };
  /** [epoch, first offset, [messages]] of a positioned publish: a gap or a new epoch recovers. */
  Channel.prototype._positioned = function (entry) {
    if (this._asking || !Array.isArray(entry) || entry.length !== 3 || !Array.isArray(entry[2])) return;
    var epoch = entry[0], first = entry[1], messages = entry[2];
    if (this.epoch === null) {
      this.epoch = epoch; this.offset = first - 1;
    } else if (epoch !== this.epoch || first > this.offset + 1) {
      this.client._askRecovery([this]);
      return;
    }
    for (var i = Math.max(0, this.offset + 1 - first); i < messages.length; i++) {
      this.offset = first + i;
      this._deliver(messages[i]);
    }
  };

  /**
   * new ClusterWS({ url, autoReconnect, autoReconnectOptions: { attempts, minInterval, maxInterval },
   *                 autoResubscribe, protocols })
   */
  function ClusterWS(options) {
    if (!(this instanceof ClusterWS)) return new ClusterWS(options);
    Emitter.call(this);
    if (!options || typeof options.url !== 'string') throw new TypeError('new ClusterWS({ url: "ws://..." })');
    var reconnect = options.autoReconnectOptions || {};
    this.options = {
      url: options.url,
      autoReconnect: options.autoReconnect !== false,
      autoReconnectOptions: {
        attempts: reconnect.attempts || 0,  // 0: no limit
        minInterval: reconnect.minInterval || 500,
        maxInterval: reconnect.maxInterval || 10000
      },
      autoResubscribe: options.autoResubscribe !== false,
      protocols: options.protocols
    };
    this._channels = {};
    this._attempts = 0;
    this._closedByUser = false;
    this._reconnectTimer = null;
    this._watchdog = null;
    this._openedAt = 0;
    this.pingInterval = 0;
    this._connect();
  }
  ClusterWS.prototype = Object.create(Emitter.prototype);
  ClusterWS.prototype.constructor = ClusterWS;
  ClusterWS.Channel = Channel;
  ClusterWS.version = '1.0.0';

  Object.defineProperty(ClusterWS.prototype, 'readyState', {
    get: function () { return this._socket ? this._socket.readyState : 3; }
  });

  ClusterWS.prototype._connect = function () {
    var self = this;
    var socket = this._socket = new WebSocket(this.options.url, this.options.protocols);
    socket.binaryType = 'arraybuffer';
    socket.onopen = function () {
      self._openedAt = Date.now();
      if (self.options.autoResubscribe) {
        var names = Object.keys(self._channels), plain = [], recovering = [];
        names.forEach(function (name) {
          var channel = self._channels[name];
          channel.state = 'subscribing';
          (channel.recover ? recovering : plain).push(channel);
        });
        if (plain.length) self._sendRaw(JSON.stringify(['s', 's', plain.map(function (c) { return c.name; })]));
        self._askRecovery(recovering);
      }
      self._emit('open');
    };
    socket.onerror = function (event) { self._emit('error', event); };
    socket.onclose = function (event) { self._closed(socket, event.code, event.reason); };
    socket.onmessage = function (event) { self._receive(event.data); };
  };

  ClusterWS.prototype._closed = function (socket, code, reason) {
    if (socket !== this._socket) return;
    clearTimeout(this._watchdog);
    var lasted = this._openedAt ? Date.now() - this._openedAt : 0;
    this._openedAt = 0;
    this._emit('close', code, reason);
    if (this._closedByUser || !this.options.autoReconnect || code === 1000) return;
    // A connection that lasted resets the backoff; one refused or dropped at once grows it,
    // so a server refusing every upgrade (401 looks like 1006 here) sees no tight loop.
    if (lasted > this.options.autoReconnectOptions.maxInterval) this._attempts = 0;
    var limit = this.options.autoReconnectOptions.attempts;
    if (limit && this._attempts >= limit) return;
    this._attempts += 1;
    var min = this.options.autoReconnectOptions.minInterval;
    var max = this.options.autoReconnectOptions.maxInterval;
    var delay = Math.min(max, min * Math.pow(2, this._attempts - 1));
    delay = delay / 2 + Math.random() * delay / 2;  // jitter: clients of a restarted server spread out
    var self = this;
    this._reconnectTimer = setTimeout(function () { self._connect(); }, delay);
  };

  ClusterWS.prototype._receive = function (data) {
    if (data instanceof ArrayBuffer) {
      var bytes = new Uint8Array(data);
      if (bytes.length === 1 && bytes[0] === PING) {
        this._armWatchdog();
        this._sendRaw(PONG);
        this._emit('ping');
        return;
      }
      this._emit('message', data);
      return;
    }
    if (this._emit('message', data)) return;  // a 'message' listener takes every frame
    this.processMessage(data);
  };

  /** Run the ClusterWS protocol on a frame (for a 'message' listener that lets it through). */
  ClusterWS.prototype.processMessage = function (data) {
    var message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      this._emit('error', error);
      return;
    }
    if (!Array.isArray(message) || message.length !== 3) return;
    var kind = message[0], param = message[1], payload = message[2];
    if (kind === 'e') {
      if (typeof param === 'string') this._emit(param, payload);
    } else if (kind === 'p') {
      for (var name in payload) {
        var channel = this._channels[name];
        if (!channel) continue;
        if (param === 'o') channel._positioned(payload[name]);
        else if (Array.isArray(payload[name])) payload[name].forEach(channel._deliver, channel);
      }
    } else if (kind === 's' && param === 's') {
      for (var key in payload) {
        if (this._channels[key]) this._channels[key]._answer(payload[key] === true);
      }
    } else if (kind === 's' && param === 'r') {
      for (var recovering in payload) {
        if (this._channels[recovering]) this._channels[recovering]._recoveryAnswer(payload[recovering]);
      }
    } else if (kind === 's' && (param === 'j' || param === 'l') && Array.isArray(payload)) {
      var member = this._channels[payload[0]];
      if (member) member._emit(param === 'j' ? 'join' : 'leave', payload[1], payload[2]);
    } else if (kind === 's' && param === 'c') {
      this.pingInterval = payload && payload.autoPing ? payload.pingInterval : 0;
      this._armWatchdog();
    }
  };

  ClusterWS.prototype._armWatchdog = function () {
    clearTimeout(this._watchdog);
    if (!this.pingInterval) return;
    var socket = this._socket;
    this._watchdog = setTimeout(function () {
      socket.close(4001, 'No pings');  // the server is gone or the path to it is: reconnect
    }, this.pingInterval + WATCHDOG_SLACK_MS);
  };

  ClusterWS.prototype._sendRaw = function (data) {
    if (this._socket && this._socket.readyState === 1) this._socket.send(data);
  };

  /** send(event, data) emits an event to the server; send(raw) sends a string or bytes as they are. */
  ClusterWS.prototype.send = function (event, data) {
    if (arguments.length < 2) this._sendRaw(event);
    else this._sendRaw(JSON.stringify(['e', event, data]));
  };

  /**
   * subscribe(name, { recover, since }) returns its Channel (the same one if already subscribed).
   * With recover, each resubscription asks for what the channel missed (the server keeps its
   * history); since ({ epoch, offset }, e.g. rendered with the page from the history; implies
   * recover) asks for what came after that position on the first subscription too.
   */
  ClusterWS.prototype.subscribe = function (name, options) {
    var channel = this._channels[name];
    if (channel) return channel;
    var since = options && options.since;
    channel = this._channels[name] = new Channel(this, name, options && (options.recover || since));
    if (since) { channel.epoch = since.epoch; channel.offset = since.offset; }
    if (channel.recover) this._askRecovery([channel]);
    else this._sendRaw(JSON.stringify(['s', 's', [name]]));
    return channel;
  };

  /** Subscribe channels with their positions: ['s','r',{name: [epoch, offset] | null}]. */
  ClusterWS.prototype._askRecovery = function (channels) {
    if (!channels.length || this.readyState !== 1) return;
    var request = {};
    channels.forEach(function (channel) { channel._asking = true; request[channel.name] = channel._position(); });
    this._sendRaw(JSON.stringify(['s', 'r', request]));
  };

  ClusterWS.prototype.getChannelByName = function (name) { return this._channels[name] || null; };

  /** Close for good (no reconnection). */
  ClusterWS.prototype.close = ClusterWS.prototype.disconnect = function (code, reason) {
    this._closedByUser = true;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._watchdog);
    if (this._socket) this._socket.close(code || 1000, reason);
  };

  if (typeof module !== 'undefined' && module.exports) module.exports = ClusterWS;
  if (root) root.ClusterWS = ClusterWS;
})(typeof globalThis !== 'undefined' ? globalThis : typeof window !== 'undefined' ? window : this);
