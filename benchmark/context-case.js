'use strict';
// One benchmark case in a fresh process, so JIT state and Node's promise hooks
// belong to the variant under test alone. Prints {"nsPerOp": N} as JSON.
// Usage: node context-case.js <native|ambient|none> <case> <k>
const path = require('node:path');

const [impl, caseName, kArg] = process.argv.slice(2);
const k = Number(kArg ?? 1);
const lib = impl === 'ambient' ? require(path.join(__dirname, '..')) : require('node:async_hooks');
const { AsyncLocalStorage, AsyncResource } = lib;

const storages = impl === 'none' ? [] : Array.from({ length: k }, () => new AsyncLocalStorage());

// Enters all K storages, then calls fn inside them.
function inside(fn) {
  let run = fn;
  for (const als of storages) {
    const next = run;
    run = () => als.run({ id: Math.random() }, next);
  }
  return run();
}

function timeSync(iterations, body) {
  body(Math.min(iterations, 200_000)); // warm-up
  const start = process.hrtime.bigint();
  body(iterations);
  return Number(process.hrtime.bigint() - start) / iterations;
}

async function timeAsync(iterations, body) {
  await body(Math.min(iterations, 50_000));
  const start = process.hrtime.bigint();
  await body(iterations);
  return Number(process.hrtime.bigint() - start) / iterations;
}

const noop = () => {};

const cases = {
  // Per-promise propagation: an await loop.
  async propagation() {
    const body = async (n) => {
      let sink = 0;
      for (let i = 0; i < n; i++) sink += await i;
      return sink;
    };
    return inside(() => timeAsync(2_000_000, body));
  },
  run() {
    return inside(() => {
      const target = storages[0];
      const store = { id: 1 };
      return timeSync(3_000_000, (n) => { for (let i = 0; i < n; i++) target.run(store, noop); });
    });
  },
  getStore() {
    return inside(() => {
      const target = storages[0];
      return timeSync(20_000_000, (n) => {
        let hits = 0;
        for (let i = 0; i < n; i++) if (target.getStore() !== undefined) hits++;
        if (hits !== n) throw new Error('getStore lost the store');
      });
    });
  },
  snapshot() {
    return inside(() => timeSync(100_000, (n) => {
      for (let i = 0; i < n; i++) AsyncLocalStorage.snapshot()(noop);
    }));
  },
  asyncResource() {
    return inside(() => timeSync(300_000, (n) => {
      for (let i = 0; i < n; i++) new AsyncResource('bench').runInAsyncScope(noop);
    }));
  },
};

Promise.resolve(cases[caseName]()).then((nsPerOp) => {
  process.stdout.write(JSON.stringify({ nsPerOp }) + '\n');
});
