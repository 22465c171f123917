// Node.js peer for the heavy-request scenario (bench/scripts/steer_heavy.sh):
//   GET /           -> "Hello, World!"
//   GET /work?ms=N  -> burns N ms of CPU inline (the `while(true){}` stand-in), then answers.
//
//   node work.js --listen 127.0.0.1:8080 [--workers N]
//
// --workers 1: one process. --workers N > 1: `cluster` with N workers (the primary accepts
// and hands connections round-robin, Node's default on Linux).
'use strict';
const http = require('http');
const cluster = require('cluster');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const listen = arg('--listen', '127.0.0.1:8080');
const sep = listen.lastIndexOf(':');
const host = listen.slice(0, sep);
const port = Number(listen.slice(sep + 1));
const workers = Number(arg('--workers', '1'));
const body = Buffer.from('Hello, World!');

function burn(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {}
}

function serve() {
  http
    .createServer((req, res) => {
      if (req.url.startsWith('/work')) {
        const ms = Math.min(Number(new URL(req.url, 'http://x').searchParams.get('ms') || 0), 10000);
        burn(ms);
        const out = Buffer.from(`burned ${ms} ms\n`);
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(out.length) });
        res.end(out);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '13' });
      res.end(body);
    })
    .listen(port, host, 4096);
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
