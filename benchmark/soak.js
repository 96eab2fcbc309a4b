'use strict';
// Soak: CYCLES begin/end cycles of request contexts (a name, two fields, a
// child scope every tenth request), the event loop turning between batches
// as in a server. Samples RSS as it goes and checks at the end that no
// record is open or left in memory and that RSS reached a plateau.
// Usage: node --expose-gc benchmark/soak.js [cycles]
const { RequestContext } = require('..');

const cycles = Number(process.argv[2] ?? 1_000_000);
const batch = 1000;
const samples = [];

function oneRequest(i) {
  return RequestContext.run({ name: 'GET /orders/:id' }, () => {
    const ctx = RequestContext.require();
    ctx.set('route', '/orders/:id').set('userId', i);
    if (i % 10 === 0) ctx.child({ name: 'db' }, () => ctx.get('userId'));
  });
}

async function main() {
  const started = process.hrtime.bigint();
  for (let done = 0; done < cycles; done += batch) {
    for (let i = done; i < done + batch; i++) oneRequest(i);
    await new Promise(setImmediate);
    if ((done + batch) % (cycles / 10) === 0) {
      // Let finalizers run and the heap settle before reading RSS.
      for (let i = 0; i < 2; i++) {
        global.gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      samples.push({ cycles: done + batch, rssMiB: +(process.memoryUsage.rss() / 2 ** 20).toFixed(1), live: RequestContext.stats().live });
    }
  }
  for (let i = 0; i < 5; i++) {
    global.gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const stats = RequestContext.stats();
  const firstHalf = Math.max(...samples.slice(1, 5).map((s) => s.rssMiB));
  const secondHalf = Math.max(...samples.slice(5).map((s) => s.rssMiB));
  const result = {
    node: process.version,
    cycles,
    seconds: +(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1),
    samples,
    final: { open: stats.open, live: stats.live, created: stats.created, released: stats.released },
    plateau: secondHalf <= firstHalf * 1.1,
  };
  console.log(JSON.stringify(result, null, 1));
  if (stats.open !== 0 || stats.live !== 0 || !result.plateau) process.exitCode = 1;
}
main();
