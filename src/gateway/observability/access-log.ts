/**
 * The access log: one JSON line per request, in the same shape as the process's pino lines (level, time, pid,
 * msg), built directly as a string — this runs on every request. Keys appear only by their label, never the key.
 *
 * The parts of a line that repeat from request to request (the time within one millisecond; method, collection
 * and route of an endpoint; client id and key label of a key; the status) are made once and reused, so a line is
 * a handful of concatenations.
 */
import type { DerivedClaims } from '../tokens/derived.ts';
import type { Logger } from 'pino';
import pino from 'pino';
import type { RequestContext } from '../policies/policy.ts';
import type { CompiledEndpoint, KeyEntry } from '../snapshot/compiled.ts';
import { LogSink } from './log-sink.ts';

export interface AccessEvent {
  reqId: string;
  method: string;
  status: number;
  /** Latency in ms, unrounded: the log shows it to two decimals. */
  ms: number;
  collection?: string;
  route?: string;
  clientId?: string;
  key?: string;
  /** A derived credential's agent and session (`act.sub`, `act.session`). */
  agent?: string;
  session?: string;
  /** The derived credential's id (its `jti`): what the admin API revokes it by. */
  credential?: string;
  ip?: string;
  code?: string;
}

export interface AccessLog {
  /** A request that matched a route, answered by the upstream or refused by a policy. */
  request(ctx: RequestContext, method: string, status: number, ms: number, code: string | undefined): void;
  /** A request refused before it matched a route, or a refused WebSocket upgrade. */
  event(event: AccessEvent, msg: 'refused' | 'upgrade refused' | 'token exchange' | 'mcp'): void;
}

/** An access log writing to the logger's own output: directly when that is a LogSink, else through pino. */
export function createAccessLog(logger: Logger): AccessLog | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!(stream instanceof LogSink)) {
    const info = (event: AccessEvent, msg: string) =>
      logger.info({ ...event, ms: Math.round(event.ms * 100) / 100 }, msg);
    return {
      request: (ctx, method, status, ms, code) => info(requestEvent(ctx, method, status, ms, code), 'request'),
      event: info,
    };
  }

  const pid = `,"pid":${process.pid}`;
  let lastMs = 0;
  let lastHead = '';
  /** The line's start up to the opening quote of the request id; the time's digits are made once per millisecond. */
  const head = (): string => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastHead = `{"level":30,"time":${epochMsDigits(now)}${pid},"reqId":"`;
    }
    return lastHead;
  };
  // Collection names, route templates and client ids are schema-validated and need no escaping; the key label is
  // free text and does.
  const endpointParts = new WeakMap<CompiledEndpoint, Map<string, string>>();
  const keyParts = new WeakMap<KeyEntry, string>();
  const agentParts = new WeakMap<DerivedClaims, string>();
  const statusParts: string[] = [];

  return {
    request(ctx, method, status, ms, code) {
      let byMethod = endpointParts.get(ctx.endpoint);
      if (byMethod === undefined) {
        byMethod = new Map();
        endpointParts.set(ctx.endpoint, byMethod);
      }
      let endpointPart = byMethod.get(method);
      if (endpointPart === undefined) {
        endpointPart = `","method":"${method}","collection":"${ctx.collection.name}","route":"${ctx.endpoint.template}"`;
        byMethod.set(method, endpointPart);
      }
      const statusPart = (statusParts[status] ??= `,"status":${status},"ms":`);
      let line = head() + ctx.requestId + endpointPart + statusPart + formatMs(ms);
      const entry = ctx.key;
      if (entry !== undefined) {
        let keyPart = keyParts.get(entry);
        if (keyPart === undefined) {
          keyPart = `,"clientId":"${entry.principal.id}","key":${JSON.stringify(entry.label)}`;
          keyParts.set(entry, keyPart);
        }
        line += keyPart;
      }
      const derived = ctx.derived;
      if (derived !== undefined) {
        let agentPart = agentParts.get(derived);
        if (agentPart === undefined) {
          agentPart = `,"agent":${JSON.stringify(derived.a.sub)}`;
          if (derived.a.session !== undefined) agentPart += `,"session":${JSON.stringify(derived.a.session)}`;
          // Its id (base64url: no escaping), which the admin API revokes this one credential by.
          agentPart += `,"credential":"${derived.j}"`;
          agentParts.set(derived, agentPart);
        }
        line += agentPart;
      }
      line +=
        code === undefined
          ? `,"ip":"${ctx.clientIp}","msg":"request"}\n`
          : `,"ip":"${ctx.clientIp}","code":"${code}","msg":"request"}\n`;
      stream.write(line);
    },
    event(e, msg) {
      let line = `${head()}${e.reqId}","method":"${e.method}"`;
      if (e.collection !== undefined) line += `,"collection":"${e.collection}","route":"${e.route}"`;
      line += `,"status":${e.status},"ms":${formatMs(e.ms)}`;
      if (e.clientId !== undefined) line += `,"clientId":"${e.clientId}"`;
      if (e.key !== undefined) line += `,"key":${JSON.stringify(e.key)}`;
      if (e.ip !== undefined) line += `,"ip":"${e.ip}"`;
      if (e.code !== undefined) line += `,"code":"${e.code}"`;
      stream.write(`${line},"msg":"${msg}"}\n`);
    },
  };
}

function requestEvent(
  ctx: RequestContext,
  method: string,
  status: number,
  ms: number,
  code: string | undefined,
): AccessEvent {
  return {
    reqId: ctx.requestId,
    method,
    collection: ctx.collection.name,
    route: ctx.endpoint.template,
    status,
    ms,
    clientId: ctx.principal?.id,
    key: ctx.key?.label,
    ...(ctx.derived !== undefined && {
      agent: ctx.derived.a.sub,
      session: ctx.derived.a.session,
      credential: ctx.derived.j,
    }),
    ip: ctx.clientIp,
    code,
  };
}

/**
 * The decimal digits of an epoch time in ms, from two small integers: V8 prints a number above 2³¹ through its
 * double-to-string conversion, several times dearer.
 */
export function epochMsDigits(ms: number): string {
  if (!(Number.isSafeInteger(ms) && ms >= 1e6)) return String(ms);
  const high = Math.floor(ms / 1e6);
  const low = `${ms - high * 1e6}`;
  return `${high}${'000000'.slice(low.length)}${low}`;
}

/**
 * Milliseconds rounded to two decimals, as JSON (`0.25`, `12`, `3.5`): made from small integers, which is several
 * times cheaper than printing a double.
 */
export function formatMs(ms: number): string {
  const rounded = Math.round(ms * 100);
  if (!(rounded >= 0 && rounded < 2 ** 31)) return Number.isFinite(ms) ? String(rounded / 100) : 'null';
  const hundredths = rounded | 0;
  const whole = (hundredths / 100) | 0;
  const frac = (hundredths - whole * 100) | 0;
  if (frac === 0) return `${whole}`;
  if (frac % 10 === 0) return `${whole}.${(frac / 10) | 0}`;
  return frac < 10 ? `${whole}.0${frac}` : `${whole}.${frac}`;
}
