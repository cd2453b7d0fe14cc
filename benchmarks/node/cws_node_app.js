// ClusterWS on Node.js as a benchmark peer: the same application logic as the shared
// bench's peers/project_app.py (on emit "ping", emit "pong" with the same data; channels
// need no code), Mode.Single, engine "ws" (the original's pure-JS engine; its native
// engine @clusterws/cws does not build on Node 20).
//
// usage: CWS_NODE_DIR=DIR node cws_node_app.js PORT
//   DIR holds ClusterWS 4.0.0-alpha.7's dist/index.js (the release commit e5e8345 of
//   github.com/ClusterWS/ClusterWS; it is not on the npm registry) with `ws@6` installed
//   beside it. benchmarks/README.md says how to prepare it; nothing here downloads it.
"use strict";
const path = require("path");

const dir = process.env.CWS_NODE_DIR;
if (!dir) {
  console.error("set CWS_NODE_DIR to a directory with ClusterWS 4.0.0-alpha.7 (benchmarks/README.md)");
  process.exit(2);
}
const { ClusterWS, Mode, LogLevel } = require(path.resolve(dir, "index.js"));
const port = Number(process.argv[2] || 9100);

new ClusterWS({
  mode: Mode.Single,
  port,
  host: "127.0.0.1",
  worker: Worker,
  websocketOptions: { engine: "ws", wsPath: "/", autoPing: false },
  loggerOptions: { logLevel: LogLevel.ERROR },
});

function Worker() {
  this.wss.on("connection", (socket) => {
    socket.on("ping", (data) => socket.send("pong", data));
  });
  console.log("BENCH_READY pid=" + process.pid);
}
