/**
 * The access log: one JSON line per request, in the same shape as the process's pino lines (level, time, pid,
 * msg), built directly as a string — this runs on every request. Keys appear only by their label, never the key.
 */
import type { Logger } from 'pino';
import pino from 'pino';
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
  ip?: string;
  code?: string;
}

export type AccessLog = (event: AccessEvent, msg: 'request' | 'refused' | 'upgrade refused') => void;

/** An access log writing to the logger's own output: directly when that is a LogSink, else through pino. */
export function createAccessLog(logger: Logger): AccessLog | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!(stream instanceof LogSink)) return (event, msg) => logger.info({ ...event, ms: Math.round(event.ms * 100) / 100 }, msg);
  const head = `{"level":30,"time":`;
  const pid = `,"pid":${process.pid}`;
  // Many lines share a millisecond at load: the time's digits are made once per millisecond.
  let lastMs = 0;
  let lastHead = '';
  return function accessLog(e, msg) {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastHead = `${head}${now}${pid},"reqId":"`;
    }
    // Collection names, route templates and client ids are schema-validated and need no escaping; the key
    // label is free text and does.
    let line = `${lastHead}${e.reqId}","method":"${e.method}"`;
    if (e.collection !== undefined) line += `,"collection":"${e.collection}","route":"${e.route}"`;
    line += `,"status":${e.status},"ms":${formatMs(e.ms)}`;
    if (e.clientId !== undefined) line += `,"clientId":"${e.clientId}"`;
    if (e.key !== undefined) line += `,"key":${JSON.stringify(e.key)}`;
    if (e.ip !== undefined) line += `,"ip":"${e.ip}"`;
    if (e.code !== undefined) line += `,"code":"${e.code}"`;
    stream.write(`${line},"msg":"${msg}"}\n`);
  };
}

/**
 * Milliseconds rounded to two decimals, as JSON (`0.25`, `12`, `3.5`): made from integers, which is several times
 * cheaper than printing a double.
 */
export function formatMs(ms: number): string {
  const hundredths = Math.round(ms * 100);
  if (!(hundredths >= 0 && hundredths < 2 ** 31)) return Number.isFinite(ms) ? String(hundredths / 100) : 'null';
  const whole = (hundredths / 100) | 0;
  const frac = hundredths - whole * 100;
  if (frac === 0) return `${whole}`;
  if (frac % 10 === 0) return `${whole}.${frac / 10}`;
  return frac < 10 ? `${whole}.0${frac}` : `${whole}.${frac}`;
}
