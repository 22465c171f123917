// Node.js `http` peer: GET / -> "Hello, World!" (text/plain, Content-Length 13; Node adds
// Date, and also `Connection: keep-alive` and `Keep-Alive: timeout=5`, its defaults).
//
//   node server.js --listen 127.0.0.1:8080 [--workers N]
//
// --workers 1 (default): one process, no cluster. --workers N > 1: the `cluster` primary forks
// N workers that share the listening socket (round-robin by the primary, Node's default on
// Linux) and does nothing else.
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
const workers = Number(arg('--workers', process.env.WORKERS || '1'));
if (!Number.isInteger(workers) || workers < 1 || !Number.isInteger(port)) {
  console.error('usage: node server.js --listen HOST:PORT [--workers N]');
  process.exit(2);
}

const body = Buffer.from('Hello, World!');
const headers = { 'Content-Type': 'text/plain', 'Content-Length': '13' };

function serve() {
  http
    .createServer((req, res) => {
      res.writeHead(200, headers);
      res.end(body);
    })
    .listen(port, host, 4096);
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    console.error(`worker ${w.process.pid} exited (${signal || code})`);
  });
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
