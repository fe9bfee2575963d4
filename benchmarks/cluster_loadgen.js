'use strict';
// Load for trio_rooms nodes sharing rooms through a backplane (driven by cluster_bench.py).
//
//   node cluster_loadgen.js --ports A,B --mode fanout|latency|echo|failover [options]
//
// fanout:  --clients C split evenly over the ports, --senders S on the FIRST port, each
//          sending --messages M chats with at most --window W of its own unechoed; the
//          result is deliveries per second over every client, local and remote.
// latency: the same clients; client 0 (first port) sends a chat every 1/--rate s for
//          --duration s, its text the send time; latency per recipient, by port.
// echo:    one client on the first port (it makes that node the room's owner), then
//          --clients C on port number --on (0: the first), each sending a ping and
//          waiting for its pong, for --duration s; round trips per second. With
//          --resume 1 those clients ask for resumable sessions (?resume=&seen=0), as the
//          owner runs every relayed one. Prints STARTED once they all connected and
//          settled, STOPPED once the last pong came: the steady state between is what
//          the runner measures (its CPU figures).
// failover: a client on each port (the first port's node owns the room); prints READY,
//          and on a line on stdin (the runner has just killed the first node) clients
//          connect to the second port and ping until one gets a pong: the seconds that
//          took, and when the second port's old client was closed (and with which code).
// The bench protocol of ../shared/bench (bench_server.py speaks it). Bounded by --timeout.
const { WebSocket } = require('ws');
const { performance } = require('perf_hooks');

const o = {
  ports: '', mode: 'fanout', clients: 200, senders: 10, messages: 500, window: 32,
  rate: 20, duration: 5, timeout: 120, settle: 1.0, room: `cluster-${process.pid}`, on: 0,
  resume: 0,
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in o)) throw new Error(`unknown option ${process.argv[i]}`);
  o[k] = typeof o[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const ports = o.ports.split(',').map(Number);
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function open(port, query = '') {
  return new Promise((resolve, reject) => {
    const url = `ws://127.0.0.1:${port}/rooms/${o.room}/websocket${query}`;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null;
}

async function main() {
  if (o.mode === 'echo') return echo();
  if (o.mode === 'failover') return failover();
  const clients = [];
  for (let i = 0; i < o.clients; i++) {
    const port = ports[i % ports.length];
    clients.push({ ws: await open(port), port, received: 0 });
  }
  await sleep(o.settle * 1000); // every node has subscribed by now
  const deadline = now() + o.timeout * 1000;
  if (o.mode === 'fanout') return fanout(clients, deadline);
  return latency(clients, deadline);
}

async function fanout(clients, deadline) {
  const S = o.senders, M = o.messages;
  const expected = S * M * clients.length;
  let total = 0; let tEnd = 0; let finish;
  const done = new Promise((r) => { finish = r; });
  const senders = [];
  clients.forEach((c, i) => {
    const st = (i % ports.length === 0 && senders.length < S) ? { ws: c.ws, sent: 0, echoed: 0, prefix: `${i}:` } : null;
    if (st) senders.push(st);
    c.ws.on('message', (data) => {
      c.received++; total++;
      if (st && data.toString().includes(`"text":"${st.prefix}`)) { st.echoed++; pump(st); }
      if (total === expected) { tEnd = now(); finish(); }
    });
  });
  function pump(st) {
    while (st.sent < M && st.sent - st.echoed < o.window) {
      st.ws.send(JSON.stringify({ type: 'chat', text: `${st.prefix}${st.sent}:xxxxxxxxxxxxxxxxxxxx` }));
      st.sent++;
    }
  }
  const t0 = now();
  senders.forEach(pump);
  const timer = setTimeout(() => { tEnd = now(); finish(); }, Math.max(0, deadline - now()));
  await done; clearTimeout(timer);
  const wall = (tEnd - t0) / 1000;
  // In node order (an object would list integer-like keys in numeric order).
  const nodes = ports.map((port) => ({ port, deliveries: 0 }));
  for (const c of clients) nodes[ports.indexOf(c.port)].deliveries += c.received;
  report({ mode: 'fanout', complete: total === expected, deliveries: total, expected, wall_s: wall,
    deliveries_per_s: total / wall, nodes }, clients);
}

async function latency(clients, deadline) {
  const samples = {};
  for (const p of ports) samples[p] = [];
  clients.forEach((c) => {
    c.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'chat' && m.text.startsWith('t=')) samples[c.port].push(now() - Number(m.text.slice(2)));
    });
  });
  const n = Math.round(o.rate * o.duration);
  for (let i = 0; i < n && now() < deadline; i++) {
    clients[0].ws.send(JSON.stringify({ type: 'chat', text: `t=${now()}` }));
    await sleep(1000 / o.rate);
  }
  await sleep(500); // the last ones arrive
  const nodes = ports.map((port) => {
    const s = samples[port].sort((a, b) => a - b);
    return { port, samples: s.length, p50_ms: percentile(s, 0.5), p99_ms: percentile(s, 0.99) };
  });
  report({ mode: 'latency', sent: n, nodes }, clients);
}

async function echo() {
  const anchor = await open(ports[0]); // first: its node owns the room
  const clients = [];
  // A resumable session's first frame is its `$session` (not a pong: ignored below).
  const query = o.resume ? '?resume=&seen=0' : '';
  for (let i = 0; i < o.clients; i++) clients.push({ ws: await open(ports[o.on], query), trips: 0 });
  await sleep(o.settle * 1000);
  let running = true;
  console.log('STARTED');
  const t0 = now();
  const rtts = [];
  await Promise.all(clients.map((c) => new Promise((resolve) => {
    let sent = 0;
    c.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type !== 'pong') return;
      c.trips++; rtts.push(now() - sent);
      if (running) { sent = now(); c.ws.send(JSON.stringify({ type: 'ping', t: sent })); } else resolve();
    });
    sent = now(); c.ws.send(JSON.stringify({ type: 'ping', t: sent }));
  }).catch(() => {})).concat([sleep(o.duration * 1000).then(() => { running = false; })]));
  const wall = (now() - t0) / 1000;
  console.log('STOPPED');
  const trips = clients.reduce((n, c) => n + c.trips, 0);
  rtts.sort((a, b) => a - b);
  report({ mode: 'echo', on: o.on, resume: Boolean(o.resume), clients: o.clients, trips, wall_s: wall, round_trips_per_s: trips / wall,
    p50_ms: percentile(rtts, 0.5), p99_ms: percentile(rtts, 0.99) }, [...clients, { ws: anchor }]);
}

function ping(ws) {
  return new Promise((resolve) => {
    ws.on('message', (data) => { if (JSON.parse(data.toString()).type === 'pong') resolve(true); });
    ws.once('close', () => resolve(false));
    ws.send(JSON.stringify({ type: 'ping', t: 0 }));
  });
}

async function failover() {
  const owner = await open(ports[0]);
  await ping(owner);
  const relayed = await open(ports[1]);
  await ping(relayed);
  let t0 = null; let closed = null;
  relayed.once('close', (code) => { closed = { code, after_s: t0 === null ? null : (now() - t0) / 1000 }; });
  console.log('READY');
  await new Promise((resolve) => process.stdin.once('data', () => { t0 = now(); resolve(); }));
  const deadline = now() + o.timeout * 1000;
  let attempts = 0;
  while (now() < deadline) {
    attempts++;
    try {
      const ws = await open(ports[1]);
      if (await ping(ws)) {
        const took = (now() - t0) / 1000;
        report({ mode: 'failover', failover_s: took, attempts, relayed_closed: closed }, [{ ws }, { ws: relayed }]);
        return;
      }
    } catch (e) { await sleep(50); }
  }
  report({ mode: 'failover', failover_s: null, attempts, relayed_closed: closed }, [{ ws: relayed }]);
}

function report(result, clients) {
  console.log('RESULT ' + JSON.stringify(result));
  for (const c of clients) c.ws.terminate();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
