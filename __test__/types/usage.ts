// Compiled by `npm test` (tsc --noEmit): the public types must accept the
// documented usage and reject misuse.
import { AsyncLocalStorage, AsyncResource, AsyncContext, nativeVersion } from '../..'

const als = new AsyncLocalStorage<{ id: string }>({ name: 'request', defaultValue: { id: '-' } })
const id: string | undefined = als.getStore()?.id
const n: number = als.run({ id: 'a' }, (x: number) => x + 1, 1)
als.exit(() => undefined)
als.enterWith({ id: 'b' })
{
  using scope = als.withScope({ id: 'c' })
  scope.dispose()
}
const bound = AsyncLocalStorage.bind((x: number) => x * 2)
const doubled: number = bound(2)
const snapshot = AsyncLocalStorage.snapshot()
const fromSnapshot: string = snapshot((s: string) => s, 'x')

class Query extends AsyncResource {
  constructor() { super('Query', { requireManualDestroy: true }) }
}
new Query().runInAsyncScope(() => 1)

const v = new AsyncContext.Variable<number>({ name: 'n', defaultValue: 0 })
const got: number | undefined = v.get()
v.run(1, () => v.get())
const s = new AsyncContext.Snapshot()
s.run(() => 1)
const wrapped = AsyncContext.Snapshot.wrap((a: number) => a)
const w: number = wrapped(1)
const version: string = nativeVersion()

// @ts-expect-error a store of the wrong type
als.run({ id: 1 }, () => {})
// @ts-expect-error options must be an object
new AsyncLocalStorage('name')

export { id, n, doubled, fromSnapshot, got, w, version }

import { RequestContext, traceContext, newRequestId, DeadlineExceededError } from '../..'

const total: Promise<number> = RequestContext.run({ name: 'job', fields: { user: 'ada', n: 1, big: 2n, ok: true, none: null } }, async (x: number) => {
  const ctx = RequestContext.require()
  ctx.set('k', 'v').set('n', 2)
  const v: string | number | bigint | boolean | null | undefined = ctx.get('k')
  const ids = ctx.ids()
  const header: string = ctx.outgoingTraceparent()
  const baggageHeader: string = ctx.outgoingBaggage()
  await ctx.child({ name: 'tx' }, async () => RequestContext.current()?.requestId)
  const audit = ctx.independent({ name: 'audit' })
  audit.end('committed').durationMs
  const token = ctx.toToken()
  RequestContext.task({ token, v, ids, header })
  return x + 1
}, 1)
const handler = RequestContext.handleTask((data: { n: number }) => data.n * 2)
const parsed = traceContext.parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
const stats = RequestContext.stats().lingering
const newId: string = newRequestId()
const isDeadline = (e: unknown) => e instanceof DeadlineExceededError
// @ts-expect-error field values are primitives only
RequestContext.begin().set('obj', { a: 1 })
export { total, handler, parsed, stats, isDeadline, newId }

import { createLogger, middleware, errorLogger, wrapHandler, enableOutgoingPropagation, withoutPropagation, pinoMixin, winstonFormat } from '../..'

const logger = createLogger({ level: 'debug', destination: 'stderr', redact: ['password'], whenFull: 'drop' })
createLogger({ redact: { paths: ['req.headers["x-api-key"]', 'users[*].token'], censor: '***' } })
createLogger({ redact: { paths: ['token'], remove: true } })
// @ts-expect-error pino's censor function is not supported
createLogger({ redact: { paths: ['token'], censor: () => '***' } })
logger.info('hello %s', 'world')
logger.error(new Error('boom'))
logger.child({ component: 'db' }).warn({ rows: 1 }, 'slow')
const warnValue: number = logger.levels.values.warn
const infoLabel: string = logger.levels.labels[30]
logger.silent('dropped')
const childBindings: Record<string, unknown> = logger.child({ component: 'db' }).bindings()
const prefixed = createLogger({ msgPrefix: '[api] ' }).child({ component: 'db' }, { msgPrefix: '[db] ' })
prefixed.setBindings({ table: 'orders' })
const prefix: string | undefined = prefixed.msgPrefix
createLogger({ messageKey: 'message', timestamp: 'iso', enabled: process.env.NODE_ENV !== 'test', errorKey: 'error' })
createLogger({ mixin: (object, level) => ({ appVersion: '1.2.3', loud: level >= 50 }), nestedKey: 'payload' })
createLogger({ timestamp: false, formatters: { level: (label) => ({ severity: label.toUpperCase() }), bindings: ({ hostname }) => ({ host: hostname }) } })
void warnValue; void infoLabel; void childBindings
const audited = createLogger({ customLevels: { audit: 35, http: 25 }, level: 'http', formatters: { level: (label) => ({ level: label }) } })
audited.audit({ orderId: 7 }, 'refunded')
audited.child({ component: 'db' }).http('query')
const noticing = audited.child({ component: 'mail' }, { customLevels: { notice: 33 }, level: 'notice' })
noticing.notice('sent')
noticing.audit('logged')
// @ts-expect-error a child's level is not its parent's
audited.notice('sent')
audited.level = 'audit'
const auditLevel: number = audited.levels.values.audit
void auditLevel
// @ts-expect-error not one of its levels
audited.level = 'loud'
// @ts-expect-error a level this logger does not have
logger.audit('refunded')
middleware({ logger: audited, level: (req) => req.url?.startsWith('/admin') ? 'audit' : 'http' })
middleware({ logger: audited, level: 'audit' })
middleware({ deadlineMs: 5_000, onDeadline: (req, res, err) => { if (!res.headersSent) res.writeHead(503).end(err.message) } })
// @ts-expect-error onDeadline is given the request, the response and the error
middleware({ deadlineMs: 5_000, onDeadline: (req, res, err: string) => {} })
// @ts-expect-error not a level of this logger
middleware({ logger: audited, level: 'loud' })
createLogger({ serializers: { user: (user: { id: number }) => user.id, err: (err: Error) => ({ text: err.message }) } })
logger.child({ user: { id: 1 } }, { serializers: { user: (user: { id: number }) => `user-${user.id}` } })
// @ts-expect-error a serializer is a function
createLogger({ serializers: { err: 'standard' } })
const flushed: Promise<void> = logger.flush()
logger.flush((err) => { if (err) throw err })
const mw = middleware({ logger, requestIdHeader: 'x-correlation-id' })
middleware({ level: (req, res, err) => req.url === '/health' ? 'silent' : err || res.statusCode >= 500 ? 'error' : 'info' })
// @ts-expect-error not a level
middleware({ level: () => 'loud' })
const errs = errorLogger({ logger })
const httpHandler = wrapHandler((req, res) => { res.end("ok") })
const stop: () => void = enableOutgoingPropagation({ allowHosts: [/\.internal$/] })
enableOutgoingPropagation({ baggage: false })
// @ts-expect-error baggage is a boolean
enableOutgoingPropagation({ baggage: 'no' })
withoutPropagation(() => 1)
const mixin = pinoMixin()
const format = winstonFormat()
// @ts-expect-error not a level
createLogger({ level: 'loud' })
export { flushed, mw, errs, httpHandler, stop, mixin, format }

import Koa = require('koa')
import { fastify as createFastify } from 'fastify'
import { koa, fastify, fastifyRequestId } from '../..'
createFastify({ genReqId: fastifyRequestId({ requestIdHeader: 'x-correlation-id' }) })
const koaApp = new Koa()
koaApp.use(koa({ logger, logErrors: false }))
const fastifyApp = createFastify()
fastifyApp.register(fastify, { logger, logErrors: true })
// @ts-expect-error logErrors is a boolean
koa({ logErrors: 'no' })
import pino = require('pino')
import winston = require('winston')
const viaPino = middleware({ logger: pino() })
const viaWinston = errorLogger({ logger: winston.createLogger() })
// @ts-expect-error not a logger
middleware({ logger: { info() {} } })
export { koaApp, fastifyApp, viaPino, viaWinston }
const pinoWithLevels = pino({ customLevels: { http: 25 } })
middleware({ logger: pinoWithLevels, level: (req) => req.url === '/' ? 'http' : 'info' })

// The README's Express, pino and winston examples, against those packages' own types.
import express = require('express')
const expressApp = express()
expressApp.use(middleware({ logger }))
expressApp.use(express.json())
expressApp.use(middleware({
  deadlineMs: 5_000,
  onDeadline: (req: express.Request, res: express.Response, err) => { if (!res.headersSent) res.status(503).json({ error: err.message, path: req.path }) },
  level: (req: express.Request, res: express.Response) => req.path === '/health' || res.locals.quiet ? 'silent' : 'info',
}))
expressApp.use(errorLogger({ logger }))
const pinoWithMixin = pino({ mixin: pinoMixin() })
const winstonWithFormat = winston.createLogger({ format: winston.format.combine(winstonFormat(), winston.format.json()) })
export { expressApp, pinoWithMixin, winstonWithFormat }
// One callback's annotated parameters type the other's too.
middleware({
  level: (req: express.Request, res: express.Response) => req.path === '/health' || res.locals.quiet ? 'silent' : 'info',
  onDeadline: (req, res) => { res.status(503).json({ path: req.path }) },
})
// @ts-expect-error the callbacks are given a request, not a string
middleware({ level: (req: string) => 'info' })
// @ts-expect-error a winston format returns the info object it was given
const notAnInfo: string = winstonFormat().transform({ level: 'info', message: 'm' })
void notAnInfo

// wrapHandler() serves node:http and node:http2's compatibility API, its
// handler typed by the server it is given to.
import http = require('node:http')
import http2 = require('node:http2')
http.createServer(wrapHandler((req, res) => { res.end(String(req.headersDistinct.host)) }))
http2.createServer(wrapHandler((req, res) => { res.end(req.authority) }))
http2.createSecureServer({}, wrapHandler(async (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => { res.stream.respond() }, {
  onDeadline: (req, res) => { res.stream.close() },
}))
// @ts-expect-error a handler is a function
wrapHandler('index.html')

// ambient's logger as Fastify's own, and the Koa adapter beside @koa/router.
const fastifyOwn = createFastify({ loggerInstance: createLogger(), genReqId: fastifyRequestId() })
fastifyOwn.register(fastify, { logger: fastifyOwn.log })
import { Router } from '@koa/router'
const router = new Router()
koaApp.use(koa({ logger: audited, level: (req, res) => res.statusCode >= 500 ? 'error' : 'audit' }))
koaApp.use(router.routes())
export { fastifyOwn }
