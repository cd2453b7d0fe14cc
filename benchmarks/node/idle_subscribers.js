'use strict';
// Opens CONNS ClusterWS connections, each subscribed to one of 100 channels, answers
// pings (wss:// URLs too, trusting any certificate), prints "READY <n>" when every subscription is confirmed, and holds them until
// stdin closes. usage: NODE_PATH=... node idle_subscribers.js URL CONNS
const WebSocket = require('ws');
const [url, conns = 5000] = process.argv.slice(2);
let confirmed = 0;
let opening = 0;
const sockets = [];
function open(i) {
  const ws = new WebSocket(url, { rejectUnauthorized: false });  // wss:// to a test CA's certificate
  sockets.push(ws);
  ws.on('open', () => ws.send(JSON.stringify(['s', 's', [`room-${i % 100}`]])));
  ws.on('message', (data, isBinary) => {
    if (isBinary) { if (data.length === 1 && data[0] === 0x39) ws.send(Buffer.from([0x41])); return; }
    const m = JSON.parse(data);
    if (m[0] === 's' && m[1] === 's' && Object.values(m[2])[0] === true && ++confirmed === Number(conns)) {
      console.log(`READY ${confirmed}`);
    }
  });
  ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
}
const timer = setInterval(() => {
  for (let k = 0; k < 100 && opening < Number(conns); k++) open(opening++);
  if (opening >= Number(conns)) clearInterval(timer);
}, 5);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
