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
  if (!(stream instanceof LogSink)) return (event, msg) => logger.info(event, msg);
  const head = `{"level":30,"time":`;
  const pid = `,"pid":${process.pid}`;
  return function accessLog(e, msg) {
    // Collection names, route templates and client ids are schema-validated and need no escaping; the key
    // label is free text and does.
    let line = `${head}${Date.now()}${pid},"reqId":"${e.reqId}","method":"${e.method}"`;
    if (e.collection !== undefined) line += `,"collection":"${e.collection}","route":"${e.route}"`;
    line += `,"status":${e.status},"ms":${e.ms}`;
    if (e.clientId !== undefined) line += `,"clientId":"${e.clientId}"`;
    if (e.key !== undefined) line += `,"key":${JSON.stringify(e.key)}`;
    if (e.ip !== undefined) line += `,"ip":"${e.ip}"`;
    if (e.code !== undefined) line += `,"code":"${e.code}"`;
    stream.write(`${line},"msg":"${msg}"}\n`);
  };
}
