/**
 * Reading the declarative gateway config file (YAML or JSON). Every problem is reported as a `ConfigError`
 * that says what and where (file, field path, line when the parser knows it); nothing half-valid is returned.
 * Messages never quote the file's text: a value next to a syntax error may be a secret.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { extname } from 'node:path';
import { isAlias, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { formatIssues, formatPath, GatewayFileSchema, type GatewayFile } from './schema.ts';

/** A mistake in user input: printed without a stack trace (exit code 2 from the CLI). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The largest config file read (YAML or JSON). Parsing takes many times the file's size in memory: far bigger
 * files would exhaust the heap. Large client sets belong in the clients file, which is read line by line.
 */
export const MAX_CONFIG_BYTES = 32 * 1024 * 1024;

/**
 * Most copies of anchored nodes that aliases (`*name`) may produce: an "alias bomb" (anchors of aliases of
 * anchors…) would otherwise expand a small file into billions of nodes.
 */
export const MAX_ALIAS_COUNT = 1000;

/** yaml warnings that are errors here: an unknown tag would silently be read as a plain string. */
const YAML_WARNINGS_REFUSED = new Set(['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE', 'BAD_ALIAS']);

export async function loadGatewayFile(file: string): Promise<GatewayFile> {
  return parseGatewayFile(await readConfigFile(file), file);
}

/**
 * Reads a config file as UTF-8 text: a regular file of at most `MAX_CONFIG_BYTES`, checked (fstat) before
 * anything is read. Opened non-blocking, so that a named pipe is refused instead of waiting for a writer.
 */
export async function readConfigFile(file: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = await handle.stat();
    checkRegularFile(stat, file, 'config file');
    if (stat.size > MAX_CONFIG_BYTES) throw tooLarge(file, stat.size);
    const text = await handle.readFile('utf8');
    checkConfigSize(text, file); // the file may have grown since the fstat
    return text;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    await handle.close();
  }
}

/** Refuses a directory, device, pipe or socket: reading one fails obscurely, blocks or never ends (`/dev/zero`). */
export function checkRegularFile(stat: Stats, file: string, what: string): void {
  if (stat.isFile()) return;
  const kind = stat.isDirectory() ? 'a directory'
    : stat.isCharacterDevice() ? 'a character device'
    : stat.isBlockDevice() ? 'a block device'
    : stat.isFIFO() ? 'a named pipe'
    : stat.isSocket() ? 'a socket'
    : 'not a regular file';
  throw new ConfigError(`${file}: the ${what} is ${kind}, not a regular file`);
}

function tooLarge(file: string, bytes: number): ConfigError {
  const limit = MAX_CONFIG_BYTES / 2 ** 20;
  const mb = Math.floor((bytes / 2 ** 20) * 10) / 10;
  const size = mb > limit ? `${mb} MB` : `${bytes} bytes`;
  return new ConfigError(`${file}: the config file is ${size}, above the ${limit} MB limit; put large client sets in clientsFile (NDJSON)`);
}

/** The size limit for text read by callers themselves (a reload, `collection apply -f -`). */
function checkConfigSize(text: string, file: string): void {
  // A UTF-8 encoding is never shorter than the UTF-16 length, nor longer than 3 times it.
  if (text.length > MAX_CONFIG_BYTES || (text.length * 3 > MAX_CONFIG_BYTES && Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES)) {
    throw tooLarge(file, Buffer.byteLength(text, 'utf8'));
  }
}

export function parseGatewayFile(text: string, file: string): GatewayFile {
  const data = parseConfigText(text, file);
  const result = GatewayFileSchema.safeParse(data);
  if (!result.success) throw new ConfigError(`${file}: invalid configuration\n${indent(formatIssues(result.error))}`);
  return result.data;
}

/** Parses a config file's text: JSON for `.json`, YAML otherwise; a ConfigError says where it is wrong. */
export function parseConfigText(text: string, file: string): unknown {
  checkConfigSize(text, file);
  if (extname(file).toLowerCase() === '.json') return parseJson(text, file);
  return parseYaml(text, file);
}

function parseYaml(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  const first = doc.errors[0] ?? doc.warnings.find((w) => YAML_WARNINGS_REFUSED.has(w.code));
  if (first) {
    const where = first.linePos?.[0] ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : 'unknown position';
    const message = first.message
      .split('\n')[0]!
      .replace(/ at line \d+, column \d+:?$/, '')
      .replace(/^(Block scalar header includes extra characters):.*/, '$1'); // they could be a secret
    throw new ConfigError(`${file}: invalid YAML at ${where}: ${message}`);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // yaml throws a ReferenceError, without a position, for an alias it cannot or must not expand.
    if (!(error instanceof ReferenceError)) throw error;
    const unresolved = unresolvedAlias(doc);
    if (unresolved) {
      const { line, col } = lineCounter.linePos(unresolved.offset);
      throw new ConfigError(`${file}: invalid YAML at line ${line}, column ${col}: the alias *${unresolved.name} names no anchor (&${unresolved.name}) set before it`);
    }
    if (/excessive alias count/i.test(error.message)) {
      throw new ConfigError(`${file}: invalid YAML: its aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies of anchored values (a guard against alias bombs); write those values out, or use fewer aliases`);
    }
    throw new ConfigError(`${file}: invalid YAML: ${error.message}`);
  }
}

/** The first alias without an anchor of its name before it, in the order yaml resolves them. */
function unresolvedAlias(doc: Document): { name: string; offset: number } | undefined {
  const anchors = new Set<string>();
  let found: { name: string; offset: number } | undefined;
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        if (!anchors.has(node.source)) {
          found = { name: node.source, offset: node.range?.[0] ?? 0 };
          return visit.BREAK;
        }
      } else if (node.anchor) {
        anchors.add(node.anchor);
      }
      return undefined;
    },
  });
  return found;
}

/**
 * JSON.parse for the value, and `scanJson` for what JSON.parse does not tell: duplicate keys (refused, as in YAML,
 * rather than the last one winning) and where a syntax error is (its own message may quote the text around it).
 */
function parseJson(text: string, file: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const problem = scanJson(text, false) ?? { offset: -1, message: 'syntax error' };
    throw new ConfigError(`${file}: invalid JSON${problem.offset >= 0 ? ` at ${lineAndColumn(text, problem.offset)}` : ''}: ${problem.message}`);
  }
  const problem = scanJson(text);
  if (problem) throw new ConfigError(`${file}: invalid JSON at ${lineAndColumn(text, problem.offset)}: ${problem.message}`);
  return value;
}

/** `line L, column C` (both 1-based) of a position in `text`. */
export function lineAndColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}

/** A JSON problem: where (a UTF-16 offset) and what, in words that never quote the text. */
export interface JsonProblem {
  offset: number;
  message: string;
}

const Ch = {
  Tab: 0x09, Newline: 0x0a, Return: 0x0d, Space: 0x20, Quote: 0x22, Plus: 0x2b, Comma: 0x2c, Minus: 0x2d, Dot: 0x2e,
  Zero: 0x30, Nine: 0x39, Colon: 0x3a, OpenBracket: 0x5b, Backslash: 0x5c, CloseBracket: 0x5d, OpenBrace: 0x7b, CloseBrace: 0x7d,
} as const;

/**
 * Checks JSON text (RFC 8259, as JSON.parse reads it) without building values: the first syntax error (where V8
 * puts it) or, unless `duplicates` is false, duplicate object key; undefined when there is none. Iterative, so
 * deep nesting cannot overflow the stack.
 */
export function scanJson(text: string, duplicates = true): JsonProblem | undefined {
  /** One entry per open array (a counter of its items) or object (the keys seen so far). */
  const stack: ({ keys: Set<string>; key: string } | { index: number })[] = [];
  const n = text.length;
  let i = 0;
  const skipSpace = () => {
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c !== Ch.Space && c !== Ch.Newline && c !== Ch.Return && c !== Ch.Tab) break;
    }
  };
  /** A problem at `i`; at the end of the text, whatever was expected, the file ends too early. */
  const problem = (message: string): JsonProblem => ({ offset: Math.min(i, n), message: i >= n ? 'unexpected end of the file' : message });
  /** Scans a string starting at its opening quote; returns its end (after the closing quote) or a problem. */
  const scanString = (): number | JsonProblem => {
    for (let j = i + 1; j < n; j++) {
      const c = text.charCodeAt(j);
      if (c === Ch.Quote) return j + 1;
      if (c < 0x20) return { offset: j, message: 'a control character (such as a line break) inside a string: write it escaped' };
      if (c === Ch.Backslash) {
        const e = text.charCodeAt(j + 1);
        if (e === 0x75 /* u */) {
          for (let k = j + 2; k < j + 6; k++) {
            if (k >= n) return { offset: n, message: 'unexpected end of the file' };
            if (!isHexDigit(text.charCodeAt(k))) return { offset: k, message: 'invalid \\u escape in a string: it needs 4 hex digits' };
          }
          j += 5;
        } else if (e === Ch.Quote || e === Ch.Backslash || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          j++;
        } else {
          return j + 1 >= n ? { offset: n, message: 'unexpected end of the file' } : { offset: j + 1, message: 'invalid escape in a string' };
        }
      }
    }
    return { offset: n, message: 'unexpected end of the file: a string is not closed' };
  };
  const scanNumber = (): number | JsonProblem => {
    let j = i;
    const digits = () => {
      const from = j;
      while (j < n && text.charCodeAt(j) >= Ch.Zero && text.charCodeAt(j) <= Ch.Nine) j++;
      return j > from;
    };
    if (text.charCodeAt(j) === Ch.Minus) j++;
    if (text.charCodeAt(j) === Ch.Zero) j++;
    else if (!digits()) return { offset: j, message: 'invalid number' };
    if (text.charCodeAt(j) === Ch.Dot) {
      j++;
      if (!digits()) return { offset: j, message: 'invalid number: digits must follow the decimal point' };
    }
    if ((text.charCodeAt(j) | 0x20) === 0x65 /* e */) {
      j++;
      if (text.charCodeAt(j) === Ch.Plus || text.charCodeAt(j) === Ch.Minus) j++;
      if (!digits()) return { offset: j, message: 'invalid number: digits must follow the exponent' };
    }
    return j;
  };

  for (;;) {
    // Expecting a value.
    skipSpace();
    if (i >= n) return problem('expected a value');
    const c = text.charCodeAt(i);
    if (c === Ch.OpenBrace || c === Ch.OpenBracket) {
      const close = c === Ch.OpenBrace ? Ch.CloseBrace : Ch.CloseBracket;
      i++;
      skipSpace();
      if (text.charCodeAt(i) === close) {
        i++;
      } else if (c === Ch.OpenBracket) {
        stack.push({ index: 0 });
        continue;
      } else {
        const frame = { keys: new Set<string>(), key: '' };
        stack.push(frame);
        const key = objectKey(frame, stack);
        if (typeof key !== 'string') return key;
        continue;
      }
    } else if (c === Ch.Quote) {
      const end = scanString();
      if (typeof end !== 'number') return end;
      i = end;
    } else if (c === Ch.Minus || (c >= Ch.Zero && c <= Ch.Nine)) {
      const end = scanNumber();
      if (typeof end !== 'number') return end;
      i = end;
    } else if (c === 0x74 /* t */ || c === 0x66 /* f */ || c === 0x6e /* n */) {
      const literal = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
      for (let k = 1; k < literal.length; k++) {
        if (text.charCodeAt(i + k) !== literal.charCodeAt(k)) {
          i += k;
          return problem(`expected ${literal}`);
        }
      }
      i += literal.length;
    } else {
      return problem('expected a value (an object, array, string, number, true, false or null)');
    }

    // After a value: close the containers it ends, or go on to the next item.
    for (;;) {
      skipSpace();
      const frame = stack.at(-1);
      if (frame === undefined) return i < n ? problem('unexpected content after the end of the JSON value') : undefined;
      const close = 'keys' in frame ? Ch.CloseBrace : Ch.CloseBracket;
      const next = text.charCodeAt(i);
      if (next === close) {
        i++;
        stack.pop();
        continue;
      }
      if (next !== Ch.Comma) return problem(`expected "," or "${'keys' in frame ? '}' : ']'}"`);
      i++;
      if ('keys' in frame) {
        skipSpace();
        const key = objectKey(frame, stack);
        if (typeof key !== 'string') return key;
      } else {
        frame.index++;
      }
      break;
    }
  }

  /** Reads `"key" :` at `i` into `frame`, refusing a key the object already has. */
  function objectKey(frame: { keys: Set<string>; key: string }, path: typeof stack): string | JsonProblem {
    if (text.charCodeAt(i) !== Ch.Quote) return problem('expected a property name in double quotes');
    const start = i;
    const end = scanString();
    if (typeof end !== 'number') return end;
    const raw = text.slice(start + 1, end - 1);
    const key = raw.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : raw;
    if (duplicates && frame.keys.has(key)) {
      const where = formatPath([...path.slice(0, -1).map((f) => ('keys' in f ? f.key : f.index)), key]);
      return { offset: start, message: `the key ${where} appears twice` };
    }
    frame.keys.add(key);
    frame.key = key;
    i = end;
    skipSpace();
    if (text.charCodeAt(i) !== Ch.Colon) return problem('expected ":" after a property name');
    i++;
    return key;
  }
}

function isHexDigit(c: number): boolean {
  return (c >= Ch.Zero && c <= Ch.Nine) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function indent(text: string): string {
  return text.split('\n').map((l) => `  ${l}`).join('\n');
}
