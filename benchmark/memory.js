'use strict';
// Memory per open context: opens N contexts (a route name and two fields,
// like a request in the middleware), keeps them, and reports the growth per
// context after a full GC: process RSS (JS objects and Rust records
// together) and the V8 heap alone. Two shapes: fields only written (read by
// the logger, in Rust), and fields also read from JS (which fills the JS
// field cache).
// Each shape is measured in its own process run: freed memory from one
// would otherwise be reused by the next and hide its cost.
// Usage: node --expose-gc benchmark/memory.js [N] [--read]
const v8 = require('node:v8');
const { RequestContext } = require('..');

const count = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 200_000);
const readBack = process.argv.includes('--read');
const settle = () => { for (let i = 0; i < 3; i++) global.gc(); };

async function measure(readBack) {
  const open = new Array(count).fill(undefined);
  settle();
  const rss = process.memoryUsage.rss();
  const heap = v8.getHeapStatistics().used_heap_size;
  for (let i = 0; i < count; i++) {
    const ctx = RequestContext.begin({ name: 'GET /orders/:id' });
    ctx.set('route', '/orders/:id').set('userId', i);
    if (readBack) ctx.get('userId');
    open[i] = ctx;
  }
  settle();
  const result = {
    rss: Math.round((process.memoryUsage.rss() - rss) / count),
    jsHeap: Math.round((v8.getHeapStatistics().used_heap_size - heap) / count),
  };
  const stillOpen = RequestContext.stats().open;
  for (const ctx of open) ctx.end();
  return { ...result, openWhileMeasured: stillOpen };
}

async function main() {
  // Warm up the code paths and the allocator first.
  for (let i = 0; i < 1000; i++) RequestContext.begin().end();
  await new Promise(setImmediate);
  const bytesPerContext = await measure(readBack);
  console.log(JSON.stringify({ node: process.version, contexts: count, fields: readBack ? 'written and read in JS' : 'written only', bytesPerContext }));
}
main();
