'use strict';
// One request-context benchmark case in a fresh process. Prints {"nsPerOp": N}.
// Usage: node store-case.js <case> <variant>
const path = require('node:path');
const crypto = require('node:crypto');
const { AsyncLocalStorage } = require('node:async_hooks');
const ambient = require(path.join(__dirname, '..'));

const [caseName, variant] = process.argv.slice(2);
const { RequestContext, traceContext, newRequestId } = ambient;

// Like a server: the event loop turns between batches, so finalizers and
// timers run (ambient gives records back when their JS objects are collected).
async function timeBatched(iterations, batch, body) {
  const run = async (n) => {
    for (let done = 0; done < n; done += batch) {
      body(Math.min(batch, n - done));
      await new Promise(setImmediate);
    }
  };
  await run(Math.min(iterations, 50_000));
  const start = process.hrtime.bigint();
  await run(iterations);
  return Number(process.hrtime.bigint() - start) / iterations;
}

function time(iterations, body) {
  body(Math.min(iterations, 100_000));
  const start = process.hrtime.bigint();
  body(iterations);
  return Number(process.hrtime.bigint() - start) / iterations;
}

const noop = () => {};
const HEADER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
let sink;

// What a team would hand-roll without ambient: a store object with ids
// from node:crypto and a Map of fields, in a native AsyncLocalStorage.
const plainStore = new AsyncLocalStorage();
function plainBegin() {
  return {
    requestId: crypto.randomUUID(),
    traceId: crypto.randomBytes(16).toString('hex'),
    spanId: crypto.randomBytes(8).toString('hex'),
    startedAt: Date.now(),
    started: performance.now(),
    fields: new Map(),
  };
}

const cases = {
  beginEnd: {
    ambient: () => timeBatched(300_000, 1000, (n) => { for (let i = 0; i < n; i++) RequestContext.run(noop); }),
    js: () => timeBatched(300_000, 1000, (n) => {
      for (let i = 0; i < n; i++) {
        const store = plainBegin();
        plainStore.run(store, noop);
        store.durationMs = performance.now() - store.started;
      }
    }),
  },
  // One context entered around a call, as the middleware does per request.
  run: {
    ambient: () => {
      const ctx = RequestContext.begin();
      return time(2_000_000, (n) => { for (let i = 0; i < n; i++) ctx.run(noop); });
    },
    native: () => {
      const store = new AsyncLocalStorage();
      const value = {};
      return time(2_000_000, (n) => { for (let i = 0; i < n; i++) store.run(value, noop); });
    },
  },
  // A listener bound to the request's context where it is added (as the
  // middleware binds those request code adds to req/res), then called.
  boundListener: {
    ambient: () => RequestContext.run(() => {
      const { bindToCurrentContext } = require(path.join(__dirname, '..', 'lib', 'frame'));
      return time(1_000_000, (n) => { for (let i = 0; i < n; i++) bindToCurrentContext(noop)(); });
    }),
    // The same by hand with Node's own class (AsyncResource.bind() itself
    // defines properties on every bound function, and costs 1.6-21 µs here).
    AsyncResource: () => new AsyncLocalStorage().run({}, () => {
      const { AsyncResource } = require('node:async_hooks');
      const bind = (fn) => {
        const resource = new AsyncResource('bound');
        return (...args) => resource.runInAsyncScope(fn, null, ...args);
      };
      return time(1_000_000, (n) => { for (let i = 0; i < n; i++) bind(noop)(); });
    }),
  },
  // The middleware's access line for a request that just ended, against
  // pino writing the same members with the context's ids from a native
  // store (pino-http's line). Both write to /dev/null asynchronously.
  accessLine: {
    ambient: () => {
      const { createLogger } = ambient;
      const { WRITE_ACCESS, accessMessage } = require(path.join(__dirname, '..', 'lib', 'logger'));
      const log = createLogger({ destination: '/dev/null' });
      const message = accessMessage('request completed');
      const ctx = RequestContext.begin();
      return timeBatched(500_000, 50, (n) => {
        for (let i = 0; i < n; i++) log[WRITE_ACCESS](ctx, 30, 'GET', '/users/:id', '/users/42?expand=1', 200, 1.234, 11, message);
      });
    },
    pino: () => {
      const pino = require('pino');
      const store = new AsyncLocalStorage();
      const log = pino({ mixin: () => store.getStore() }, pino.destination({ dest: '/dev/null', sync: false }));
      const ids = { requestId: crypto.randomUUID(), traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
      return store.run(ids, () => timeBatched(500_000, 50, (n) => {
        for (let i = 0; i < n; i++) {
          log.info({ method: 'GET', route: '/users/:id', url: '/users/42?expand=1', status: 200, durationMs: 1.234, bytes: 11 }, 'request completed');
        }
      }));
    },
  },
  fieldSet: {
    ambient: () => RequestContext.run(() => {
      const ctx = RequestContext.require();
      return time(1_000_000, (n) => { for (let i = 0; i < n; i++) ctx.set('user', i); });
    }),
    js: () => plainStore.run(plainBegin(), () => time(1_000_000, (n) => {
      for (let i = 0; i < n; i++) plainStore.getStore().fields.set('user', i);
    })),
  },
  fieldGet: {
    ambient: () => RequestContext.run({ fields: { user: 'ada' } }, () => time(10_000_000, (n) => {
      for (let i = 0; i < n; i++) sink = RequestContext.current().get('user');
    })),
    js: () => plainStore.run(plainBegin(), () => {
      plainStore.getStore().fields.set('user', 'ada');
      return time(10_000_000, (n) => { for (let i = 0; i < n; i++) sink = plainStore.getStore().fields.get('user'); });
    }),
  },
  // What a pino mixin or winston format reads for each line: the ids and
  // fields of a context that has a record (it has fields).
  contextFields: {
    ambient: () => RequestContext.run({ fields: { user: 'ada', tenant: 'acme' } }, () => time(2_000_000, (n) => {
      for (let i = 0; i < n; i++) sink = ambient.contextFields();
    })),
    js: () => plainStore.run(plainBegin(), () => {
      plainStore.getStore().fields.set('user', 'ada').set('tenant', 'acme');
      return time(2_000_000, (n) => {
        for (let i = 0; i < n; i++) {
          const { requestId, traceId, spanId, fields } = plainStore.getStore();
          sink = { requestId, traceId, spanId, ...Object.fromEntries(fields) };
        }
      });
    }),
  },
  // Task data for a worker, with what its handler needs of the context.
  taskHandOff: {
    ambient: () => RequestContext.run({ fields: { user: 'ada', tenant: 'acme' } }, () => time(1_000_000, (n) => {
      for (let i = 0; i < n; i++) sink = RequestContext.task(i);
    })),
    js: () => plainStore.run(plainBegin(), () => {
      plainStore.getStore().fields.set('user', 'ada').set('tenant', 'acme');
      return time(1_000_000, (n) => {
        for (let i = 0; i < n; i++) {
          const { requestId, traceId, spanId, fields } = plainStore.getStore();
          sink = { context: { requestId, traceId, spanId, fields: Object.fromEntries(fields) }, data: i };
        }
      });
    }),
  },
  // The headers a fetch made in a request gets: what undici publishes for
  // each request, as propagation sees it (no allow-list).
  fetchPropagation: {
    ambient: () => {
      ambient.enableOutgoingPropagation();
      const created = require('node:diagnostics_channel').channel('undici:request:create');
      return RequestContext.run({}, () => time(500_000, (n) => {
        for (let i = 0; i < n; i++) {
          const request = { origin: 'http://127.0.0.1:3000', headers: [], addHeader(name, value) { this.headers.push(name, value); return this; } };
          created.publish({ request });
          sink = request;
        }
      }));
    },
    // OpenTelemetry's W3C propagator on the same kind of request, with the
    // request id set beside it.
    opentelemetry: () => {
      const { W3CTraceContextPropagator } = require('@opentelemetry/core');
      const api = require('@opentelemetry/api');
      const propagator = new W3CTraceContextPropagator();
      const ctx = api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
      const setter = { set: (request, name, value) => request.addHeader(name, value) };
      return time(500_000, (n) => {
        for (let i = 0; i < n; i++) {
          const request = { origin: 'http://127.0.0.1:3000', headers: [], addHeader(name, value) { this.headers.push(name, value); return this; } };
          propagator.inject(ctx, request, setter);
          request.addHeader('x-request-id', '0192f7a8-7b3c-7def-8123-456789abcdef');
          sink = request;
        }
      });
    },
  },
  // The same with W3C baggage on the context (two members), which ambient
  // formats once per context and OpenTelemetry's baggage propagator on every
  // inject().
  fetchPropagationBaggage: {
    ambient: () => {
      ambient.enableOutgoingPropagation();
      const created = require('node:diagnostics_channel').channel('undici:request:create');
      return RequestContext.run({ baggage: 'tenant=acme,plan=pro' }, () => time(500_000, (n) => {
        for (let i = 0; i < n; i++) {
          const request = { origin: 'http://127.0.0.1:3000', headers: [], addHeader(name, value) { this.headers.push(name, value); return this; } };
          created.publish({ request });
          sink = request;
        }
      }));
    },
    opentelemetry: () => {
      const { W3CTraceContextPropagator, W3CBaggagePropagator } = require('@opentelemetry/core');
      const api = require('@opentelemetry/api');
      const trace = new W3CTraceContextPropagator();
      const baggage = new W3CBaggagePropagator();
      const spanContext = api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
      const ctx = api.propagation.setBaggage(spanContext, api.propagation.createBaggage({ tenant: { value: 'acme' }, plan: { value: 'pro' } }));
      const setter = { set: (request, name, value) => request.addHeader(name, value) };
      return time(500_000, (n) => {
        for (let i = 0; i < n; i++) {
          const request = { origin: 'http://127.0.0.1:3000', headers: [], addHeader(name, value) { this.headers.push(name, value); return this; } };
          trace.inject(ctx, request, setter);
          baggage.inject(ctx, request, setter);
          request.addHeader('x-request-id', '0192f7a8-7b3c-7def-8123-456789abcdef');
          sink = request;
        }
      });
    },
  },
  requestId: {
    ambient: () => time(2_000_000, (n) => { for (let i = 0; i < n; i++) sink = newRequestId(); }),
    'crypto.randomUUID': () => time(2_000_000, (n) => { for (let i = 0; i < n; i++) sink = crypto.randomUUID(); }),
  },
  traceparentParse: {
    ambient: () => time(1_000_000, (n) => { for (let i = 0; i < n; i++) sink = traceContext.parseTraceparent(HEADER); }),
    opentelemetry: () => {
      const { parseTraceParent } = require('@opentelemetry/core');
      return time(1_000_000, (n) => { for (let i = 0; i < n; i++) sink = parseTraceParent(HEADER); });
    },
    traceparent: () => {
      const TraceParent = require('traceparent');
      return time(1_000_000, (n) => { for (let i = 0; i < n; i++) sink = TraceParent.fromString(HEADER); });
    },
  },
  traceparentFormat: {
    ambient: () => time(1_000_000, (n) => {
      for (let i = 0; i < n; i++) sink = traceContext.formatTraceparent('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 1);
    }),
    // OpenTelemetry's W3C propagator builds the header with a template.
    opentelemetry: () => {
      const { W3CTraceContextPropagator } = require('@opentelemetry/core');
      const api = require('@opentelemetry/api');
      const defaultTextMapSetter = api.defaultTextMapSetter;
      const propagator = new W3CTraceContextPropagator();
      const ctx = api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
      return time(1_000_000, (n) => {
        for (let i = 0; i < n; i++) {
          const carrier = {};
          propagator.inject(ctx, carrier, defaultTextMapSetter);
          sink = carrier.traceparent;
        }
      });
    },
  },
};

Promise.resolve(cases[caseName][variant]()).then((nsPerOp) => {
  process.stdout.write(JSON.stringify({ nsPerOp }) + '\n');
});
