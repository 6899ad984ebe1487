/**
 * The official Cedar evaluator and validator (`@cedar-policy/cedar-wasm`), loaded on first use: compiling its
 * WebAssembly module takes tens of milliseconds and some megabytes, which a gateway whose collections have no
 * policies never pays. The Node build is CommonJS and loads synchronously, so callers stay synchronous.
 */
import { createRequire } from 'node:module';
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';

export type Cedar = typeof CedarWasm;
export type {
  AuthorizationAnswer,
  DetailedError,
  EntityJson,
  Expr,
  PolicyJson,
  SchemaJson,
  ValidationAnswer,
} from '@cedar-policy/cedar-wasm/nodejs';

let loaded: Cedar | undefined;

/** The cedar-wasm module (loaded on the first call). */
export function cedar(): Cedar {
  loaded ??= createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs') as Cedar;
  return loaded;
}

/** One Cedar error as `message (help)` with its location in `source`, e.g. `line 3, column 12`. */
export function formatCedarError(
  error: { message: string; help: string | null; sourceLocations?: { start: number; end: number }[] },
  source?: string,
): string {
  let text = error.message;
  if (error.help) text += ` (${error.help})`;
  const at = error.sourceLocations?.[0];
  if (at !== undefined && source !== undefined) {
    const before = source.slice(0, at.start);
    const line = before.split('\n').length;
    const column = at.start - before.lastIndexOf('\n');
    text += ` at line ${line}, column ${column}: ${JSON.stringify(source.slice(at.start, Math.min(at.end, at.start + 80)))}`;
  }
  return text;
}
