// TypeScript declarations of the clusterws-gevent browser client (/clusterws.js, /clusterws.mjs).

export interface AutoReconnectOptions {
  /** Attempts before giving up; 0 (default): no limit. */
  attempts?: number;
  /** Milliseconds before the first attempt (default 500); doubled after each failure... */
  minInterval?: number;
  /** ... up to this (default 10000). Each wait is jittered. */
  maxInterval?: number;
}

export interface ClusterWSOptions {
  url: string;
  /** Reconnect when the connection is lost (default true; never after close()). */
  autoReconnect?: boolean;
  autoReconnectOptions?: AutoReconnectOptions;
  /** Subscribe again to every channel after a reconnection (default true). */
  autoResubscribe?: boolean;
  protocols?: string | string[];
}

export type Listener = (...args: any[]) => void;

export interface SubscribeOptions {
  /** Ask for what the channel missed on each resubscription (the server keeps its history). */
  recover?: boolean;
  /** A position (e.g. rendered with the page from the history): the first subscription asks for
   *  what came after it too. Implies recover. */
  since?: { epoch: string; offset: number };
}

export declare class Channel {
  readonly name: string;
  readonly state: 'subscribing' | 'subscribed' | 'canceled' | 'unsubscribed';
  readonly recover: boolean;
  /** The stream and offset of the last message delivered (recover only; null/0 before any). */
  readonly epoch: string | null;
  readonly offset: number;
  /** null until a resubscription asked for missed messages; then whether all of them came. */
  readonly recovered: boolean | null;
  on(event: 'subscribed' | 'canceled', listener: () => void): this;
  on(event: 'recovered', listener: (recovered: boolean) => void): this;
  on(event: 'join' | 'leave', listener: (socketId: string, info: { user: any }) => void): this;
  off(event: 'subscribed' | 'canceled' | 'recovered' | 'join' | 'leave', listener?: Listener): this;
  /** Called with every message published to the channel. */
  setWatcher(listener: (message: any) => void): this;
  watch(listener: (message: any) => void): this;
  removeWatcher(): this;
  publish(data: any): this;
  unsubscribe(): void;
}

export declare class ClusterWS {
  constructor(options: ClusterWSOptions);
  static readonly version: string;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** The server's ping interval in ms (0: the server does not ping). */
  readonly pingInterval: number;
  on(event: 'open' | 'ping', listener: () => void): this;
  on(event: 'close', listener: (code: number, reason: string) => void): this;
  on(event: 'error', listener: (error: any) => void): this;
  on(event: 'message', listener: (raw: string | ArrayBuffer) => void): this;
  on(event: string, listener: (data: any) => void): this;
  off(event: string, listener?: Listener): this;
  send(event: string, data: any): void;
  send(raw: string | ArrayBuffer | ArrayBufferView): void;
  subscribe(channel: string, options?: SubscribeOptions): Channel;
  getChannelByName(channel: string): Channel | null;
  processMessage(raw: string): void;
  close(code?: number, reason?: string): void;
  disconnect(code?: number, reason?: string): void;
}

export default ClusterWS;
