'use strict';
// Outgoing propagation: requests made inside a request context, with
// node:http/https or the global fetch, carry `traceparent` (a new child span),
// `tracestate`, `baggage` and the request id. Hooked through
// diagnostics_channel, the channels Node and undici publish for every
// outgoing request, so no user code or module is patched.
//
// node:http publishes `http.client.request.created` before the headers are
// sent from Node 22.12 on; Node 20 only has `http.client.request.start`,
// which comes after they were written, so there node:http requests are not
// propagated automatically (fetch is). `httpPropagation` tells which.
const dc = require('node:diagnostics_channel');
const { validateHeaderName } = require('node:http');
const { AsyncLocalStorage } = require('./async_local_storage');
const { RequestContext } = require('./request_context');
const { invalidArgType, invalidArgValue, validateBoolean, validateFunction, validateObject } = require('./errors');

// Whether this Node publishes node:http requests before their headers go out.
const httpPropagation = (() => {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 12);
})();

const suppressed = new AsyncLocalStorage({ name: 'ambient.propagation.suppressed', defaultValue: false });
let active;

function hostAllowed(allow, host) {
  if (allow === undefined) return true;
  const name = hostName(host);
  if (typeof allow === 'function') return Boolean(allow(name));
  return allow.some((rule) => (typeof rule === 'string' ? rule === name : rule.test(name)));
}

// The host as the allow-list sees it, the same for http and fetch: lower
// case (host names are case-insensitive; URL lowercases them, node:http
// keeps what the caller wrote) and an IPv6 address without its brackets.
function hostName(host) {
  const name = host.toLowerCase();
  if (!name.startsWith('[')) return name;
  const end = name.indexOf(']');
  return name.slice(1, end === -1 ? undefined : end);
}

// undici's origin is a URL or its string; undefined when it does not parse.
function originHost(origin) {
  try {
    return new URL(origin).hostname;
  } catch {
    return undefined;
  }
}

function allowOption(allow) {
  if (allow === undefined || typeof allow === 'function') return allow;
  if (!Array.isArray(allow)) throw invalidArgValue('options.allowHosts', allow, 'must be an array of host names and RegExps, or a function');
  // Checked here: a bad rule would throw in every request's channel
  // message, an uncaught exception each time.
  return allow.map((rule, i) => {
    if (typeof rule === 'string') return hostName(rule);
    // test() with the g or y flag starts where the last match ended: the
    // same host would pass one request and fail the next.
    if (rule instanceof RegExp) return rule.global || rule.sticky ? new RegExp(rule.source, rule.flags.replace(/[gy]/g, '')) : rule;
    throw invalidArgType(`options.allowHosts[${i}]`, 'string or an instance of RegExp', rule);
  });
}

// Whether an undici request (what `undici:request:create` publishes) already
// has the header: its headers are a flat [name, value, ...] array in the
// undici bundled with Node 20 to 26, a "name: value\r\n" string in undici 5.
function undiciHasHeader(request, name) {
  const { headers } = request;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return true;
    }
    return false;
  }
  return typeof headers === 'string' && headers.split('\r\n').some((line) => {
    const colon = line.indexOf(':');
    return colon > 0 && line.slice(0, colon).trim().toLowerCase() === name;
  });
}

// Adds the context's headers that the request does not carry yet (`has`
// tells), building only those: a new span id takes a pool entry, and a
// tracestate or baggage read may give the context a record in Rust.
function addMissingHeaders(ctx, requestIdHeader, baggage, has, add) {
  if (!has('traceparent')) add('traceparent', ctx.outgoingTraceparent());
  if (!has(requestIdHeader)) add(requestIdHeader, ctx.requestId);
  if (!has('tracestate')) {
    const tracestate = ctx.tracestate;
    if (tracestate !== '') add('tracestate', tracestate);
  }
  // Most contexts have no baggage, and that answer is cheaper than looking
  // through the request's headers.
  if (baggage) {
    const header = ctx.outgoingBaggage();
    if (header !== '' && !has('baggage')) add('baggage', header);
  }
}

/**
 * options.requestIdHeader ('x-request-id'), lower-cased, for the middleware
 * and for outgoing requests. A name setHeader() would refuse fails here,
 * not in every request.
 */
function requestIdHeaderOption(options) {
  const header = options.requestIdHeader ?? 'x-request-id';
  if (typeof header !== 'string') throw invalidArgType('options.requestIdHeader', 'string', header);
  validateHeaderName(header);
  return header.toLowerCase();
}

/**
 * Starts adding the headers to outgoing requests. Options: requestIdHeader
 * ('x-request-id'), allowHosts (host names, RegExps, or a function of the
 * host; default every host), baggage (pass the context's W3C baggage on;
 * default true). Returns a function that stops it.
 */
function enableOutgoingPropagation(options = {}) {
  validateObject(options, 'options');
  const requestIdHeader = requestIdHeaderOption(options);
  const allow = allowOption(options.allowHosts);
  const baggage = options.baggage ?? true;
  validateBoolean(baggage, 'options.baggage');
  disableOutgoingPropagation();

  const onHttp = ({ request }) => {
    const ctx = RequestContext.current();
    if (ctx === undefined || suppressed.getStore() || request.headersSent) return;
    // Where it goes (ClientRequest#host: the hostname option, or
    // 'localhost'), not what its Host header claims.
    if (!hostAllowed(allow, request.host)) return;
    addMissingHeaders(ctx, requestIdHeader, baggage, (name) => request.hasHeader(name), (name, value) => request.setHeader(name, value));
  };
  const onFetch = ({ request }) => {
    const ctx = RequestContext.current();
    if (ctx === undefined || suppressed.getStore()) return;
    // Only an allow-list needs the host: parsing the origin cost 1.2-1.4 µs
    // of the 1.8-2.1 µs this handler took a request (BENCHMARKS.md).
    if (allow !== undefined) {
      const host = originHost(request.origin);
      if (host === undefined || !hostAllowed(allow, host)) return;
    }
    // addHeader() appends: a header the caller set would go out twice
    // (`traceparent: theirs, ours`, which a receiver must reject).
    addMissingHeaders(ctx, requestIdHeader, baggage, (name) => undiciHasHeader(request, name), (name, value) => request.addHeader(name, value));
  };
  if (httpPropagation) dc.subscribe('http.client.request.created', onHttp);
  dc.subscribe('undici:request:create', onFetch);
  active = () => {
    if (httpPropagation) dc.unsubscribe('http.client.request.created', onHttp);
    dc.unsubscribe('undici:request:create', onFetch);
  };
  return disableOutgoingPropagation;
}

function disableOutgoingPropagation() {
  if (active === undefined) return;
  active();
  active = undefined;
}

/** Runs fn with no propagation headers added to the requests it makes. */
function withoutPropagation(fn, ...args) {
  validateFunction(fn, 'fn');
  return suppressed.run(true, fn, ...args);
}

module.exports = { enableOutgoingPropagation, disableOutgoingPropagation, withoutPropagation, httpPropagation, requestIdHeaderOption };
