'use strict';
// A burst of concurrent HTTP requests on loopback. Each request runs in its own
// context; every log line below reads the request id from ambient, never from
// a parameter, and the lines interleave as the requests' awaits, timers and
// file reads complete in random order.
const http = require('node:http');
const fs = require('node:fs/promises');
const { setTimeout: sleep } = require('node:timers/promises');
const { AsyncLocalStorage, AsyncContext } = require('..');

const request = new AsyncLocalStorage({ name: 'request' });
const user = new AsyncContext.Variable({ name: 'user', defaultValue: 'anonymous' });

function log(message) {
  const ctx = request.getStore();
  console.log(`[${ctx?.id ?? '-'}] [user:${user.get()}] ${message}`);
}

let nextId = 1;
const server = http.createServer((req, res) => {
  const id = `req-${String(nextId++).padStart(2, '0')}`;
  request.run({ id, started: process.hrtime.bigint() }, () => user.run(req.headers['x-user'] ?? 'anonymous', async () => {
    log(`${req.method} ${req.url}`);
    await sleep(Math.random() * 20);
    log('loaded the profile');
    const stat = await fs.stat(__filename);
    log(`read a file of ${stat.size} bytes`);
    setTimeout(() => {
      const ms = Number(process.hrtime.bigint() - request.getStore().started) / 1e6;
      log(`done in ${ms.toFixed(1)} ms`);
      res.end(JSON.stringify({ id, user: user.get() }));
    }, Math.random() * 10);
  }));
});

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const users = ['ada', 'grace', 'linus', 'margaret'];
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: `/orders/${i}`, headers: { 'x-user': users[i % users.length] } }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  })));
  server.close();
  const ok = replies.every((r, i) => r.user === users[i % users.length]);
  log(`${replies.length} requests, every reply carried its own user: ${ok}`);
  if (!ok) process.exitCode = 1;
});
