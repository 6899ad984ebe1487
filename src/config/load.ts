/**
 * Reading the declarative gateway config file (YAML or JSON). Every problem is reported as a `ConfigError`
 * that says what and where (file, field path, line when the parser knows it); nothing half-valid is returned.
 * Messages never quote the file's text: a value next to a syntax error may be a secret.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { visit as visitJson } from 'jsonc-parser';
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
  return parseGatewayFileAndSpecs(await readConfigFile(file), file);
}

/** `parseGatewayFile`, after importing the OpenAPI documents that collections name (`openapi: FILE`). */
export async function parseGatewayFileAndSpecs(text: string, file: string): Promise<GatewayFile> {
  const data = parseConfigText(text, file);
  const collections = (data as { collections?: unknown } | null)?.collections;
  // The OpenAPI parser loads only for a file that names a document.
  const named =
    Array.isArray(collections) && collections.some((c) => c !== null && typeof c === 'object' && 'openapi' in c);
  const problems = named
    ? await (await import('./openapi/expand.ts')).expandOpenApiCollections(data, dirname(file))
    : [];
  if (problems.length > 0) throw new ConfigError(`${file}: invalid configuration\n${indent(problems.join('\n'))}`);
  const result = GatewayFileSchema.safeParse(data);
  if (!result.success) throw new ConfigError(`${file}: invalid configuration\n${indent(formatIssues(result.error))}`);
  return result.data;
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
  const kind = stat.isDirectory()
    ? 'a directory'
    : stat.isCharacterDevice()
      ? 'a character device'
      : stat.isBlockDevice()
        ? 'a block device'
        : stat.isFIFO()
          ? 'a named pipe'
          : stat.isSocket()
            ? 'a socket'
            : 'not a regular file';
  throw new ConfigError(`${file}: the ${what} is ${kind}, not a regular file`);
}

function tooLarge(file: string, bytes: number): ConfigError {
  const limit = MAX_CONFIG_BYTES / 2 ** 20;
  const mb = Math.floor((bytes / 2 ** 20) * 10) / 10;
  const size = mb > limit ? `${mb} MB` : `${bytes} bytes`;
  return new ConfigError(
    `${file}: the config file is ${size}, above the ${limit} MB limit; put large client sets in clientsFile (NDJSON)`,
  );
}

/** The size limit for text read by callers themselves (a reload, `collection apply -f -`). */
function checkConfigSize(text: string, file: string): void {
  // A UTF-8 encoding is never shorter than the UTF-16 length, nor longer than 3 times it.
  if (
    text.length > MAX_CONFIG_BYTES ||
    (text.length * 3 > MAX_CONFIG_BYTES && Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES)
  ) {
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
    const message = first.message
      .split('\n')[0]!
      .replace(/ at line \d+, column \d+:?$/, '')
      .replace(/^(Block scalar header includes extra characters):.*/, '$1'); // they could be a secret
    const opened = unclosedOpener(text, first.code, message, first.pos[0]);
    if (opened !== undefined) {
      const { line, col } = lineCounter.linePos(opened.offset);
      throw new ConfigError(
        `${file}: invalid YAML at line ${line}, column ${col}: the ${opened.what} that starts here is not closed (${message}); close it with ${opened.close}`,
      );
    }
    const where = first.linePos?.[0]
      ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}`
      : 'unknown position';
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
      throw new ConfigError(
        `${file}: invalid YAML at line ${line}, column ${col}: the alias *${unresolved.name} names no anchor (&${unresolved.name}) set before it`,
      );
    }
    if (/excessive alias count/i.test(error.message)) {
      throw new ConfigError(
        `${file}: invalid YAML: its aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies of anchored values (a guard against alias bombs); write those values out, or use fewer aliases`,
      );
    }
    throw new ConfigError(`${file}: invalid YAML: ${error.message}`);
  }
}

/**
 * yaml reports an unclosed quote or flow collection where it noticed — the line after it, often the end of the
 * file — which reads as a line number one too far. This finds where the unclosed construct starts.
 */
function unclosedOpener(
  text: string,
  code: string,
  message: string,
  noticedAt: number,
): { offset: number; what: string; close: string } | undefined {
  const closing = /end with an? ([\]}])/.exec(message)?.[1] ?? /^Missing closing (["'])quote/.exec(message)?.[1];
  if (closing === undefined || (code !== 'MISSING_CHAR' && code !== 'BAD_INDENT')) return undefined;
  const open = closing === ']' ? '[' : closing === '}' ? '{' : closing;
  const offset = text.lastIndexOf(open, Math.max(0, noticedAt - 1));
  if (offset < 0) return undefined;
  const what = open === '[' ? 'flow sequence [' : open === '{' ? 'flow map {' : `quoted string ${open}`;
  return { offset, what, close: closing };
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
  } catch (error) {
    const problem = scanJson(text, false) ?? syntaxErrorAt(error);
    throw new ConfigError(
      `${file}: invalid JSON${problem.offset >= 0 ? ` at ${lineAndColumn(text, problem.offset)}` : ''}: ${problem.message}`,
    );
  }
  const problem = scanJson(text);
  if (problem)
    throw new ConfigError(`${file}: invalid JSON at ${lineAndColumn(text, problem.offset)}: ${problem.message}`);
  return value;
}

/**
 * For a JSON.parse error that `scanJson` finds no cause of (jsonc-parser and V8 may differ on rare inputs): where V8
 * says it is, when it says so, taken from its message as a number alone (the message also quotes the text).
 */
export function syntaxErrorAt(error: unknown): JsonProblem {
  const at = /\bat position (\d+)/.exec(error instanceof Error ? error.message : '');
  return { offset: at ? Number(at[1]) : -1, message: 'syntax error' };
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

/**
 * The deepest nesting of objects and arrays `scanJson` follows: jsonc-parser recurses, and runs out of stack near
 * 4,000 levels. A gateway file nests fewer than 10.
 */
export const MAX_JSON_DEPTH = 1000;

/**
 * The values of jsonc-parser's `ParseErrorCode` that have messages of their own here (a const enum, which TypeScript
 * with verbatimModuleSyntax cannot read); the others say a token is not what was expected there.
 */
export const JSONC_ERRORS = {
  InvalidSymbol: 1,
  InvalidNumberFormat: 2,
  InvalidCommentToken: 10,
  UnexpectedEndOfString: 12,
  UnexpectedEndOfNumber: 13,
  InvalidUnicode: 14,
  InvalidEscapeCharacter: 15,
  InvalidCharacter: 16,
} as const;

/** Thrown from a visitor callback to stop jsonc-parser's `visit` at the first problem. */
const STOP = Symbol('stop');

/**
 * Checks JSON text with jsonc-parser (in strict JSON mode), without building values: the first syntax error or,
 * unless `duplicates` is false, duplicate object key; undefined when there is none. The position is where V8 puts
 * it, except for an error inside a string: given at the string's opening quote, or, for a string that a line break
 * ends, at that line break (jsonc-parser tells one error of a string: its last).
 */
export function scanJson(text: string, duplicates = true): JsonProblem | undefined {
  const n = text.length;
  /** One entry per open container: an object's keys (none when not checking them), or null for an array. */
  const open: (Set<string> | null)[] = [];
  /** What is expected next, followed through the callbacks below, to say so when something else comes. */
  let expecting: 'value' | 'key' | 'colon' | 'next' = 'value';
  let found: JsonProblem | undefined;
  const stop = (offset: number, message: string): never => {
    found = { offset, message };
    throw STOP;
  };
  /** A problem where a token does not fit (or the file ends), in words of what was expected there. */
  const unexpected = (offset: number): never => {
    if (offset >= n) return stop(n, 'unexpected end of the file');
    const top = open.at(-1);
    return stop(
      offset,
      expecting === 'value'
        ? 'expected a value (an object, array, string, number, true, false or null)'
        : expecting === 'key'
          ? 'expected a property name in double quotes'
          : expecting === 'colon'
            ? 'expected ":" after a property name'
            : top === undefined
              ? 'unexpected content after the end of the JSON value'
              : top
                ? 'expected "," or "}"'
                : 'expected "," or "]"',
    );
  };
  const begin = (offset: number, keys: Set<string> | null) => {
    if (open.length === MAX_JSON_DEPTH)
      stop(offset, `objects and arrays nested more than ${MAX_JSON_DEPTH} levels deep`);
    open.push(keys);
    expecting = keys ? 'key' : 'value';
  };
  const end = () => {
    open.pop();
    expecting = 'next';
  };
  const NO_KEYS = new Set<string>();
  try {
    visitJson(
      text,
      {
        onObjectBegin: (offset) => begin(offset, duplicates ? new Set() : NO_KEYS),
        onArrayBegin: (offset) => begin(offset, null),
        onObjectEnd: end,
        onArrayEnd: end,
        onObjectProperty(key, offset, _length, _line, _column, path) {
          if (duplicates) {
            const keys = open.at(-1)!;
            if (keys.has(key)) stop(offset, `the key ${formatPath([...path(), key])} appears twice`);
            keys.add(key);
          }
          expecting = 'colon';
        },
        onSeparator(separator) {
          expecting = separator === ':' || !open.at(-1) ? 'value' : 'key';
        },
        onLiteralValue() {
          expecting = 'next';
        },
        onError(code: number, offset, length) {
          // Codes 12 to 16 are errors inside a string or number, found as it is scanned: before the parser sees
          // whether that string or number may stand there at all (a value where a value is expected, a string as a key).
          if (
            code >= JSONC_ERRORS.UnexpectedEndOfString &&
            expecting !== 'value' &&
            !(expecting === 'key' && code !== JSONC_ERRORS.UnexpectedEndOfNumber)
          ) {
            return unexpected(offset);
          }
          switch (code) {
            case JSONC_ERRORS.UnexpectedEndOfString: // ended by the end of the file, or a line break
              return offset + length >= n
                ? stop(n, 'unexpected end of the file: a string is not closed')
                : stop(offset + length, 'a line break inside a string: close the string before it, or write it as \\n');
            case JSONC_ERRORS.InvalidCharacter:
              return stop(
                offset,
                'a control character (such as a tab) inside the string that starts here: write it escaped',
              );
            case JSONC_ERRORS.InvalidEscapeCharacter:
              return stop(
                offset,
                'an invalid escape inside the string that starts here: a backslash must be followed by one of " \\ / b f n r t u',
              );
            case JSONC_ERRORS.InvalidUnicode:
              return stop(offset, 'an invalid \\u escape inside the string that starts here: it needs 4 hex digits');
            case JSONC_ERRORS.UnexpectedEndOfNumber: // the number token ends where a digit is missing
              return stop(
                offset + length,
                `invalid number: digits must follow the ${text.charCodeAt(offset + length - 1) === 0x2e ? 'decimal point' : 'exponent'}`,
              );
            case JSONC_ERRORS.InvalidNumberFormat:
              return stop(offset, 'invalid number');
            case JSONC_ERRORS.InvalidCommentToken:
              return stop(offset, 'a comment, which JSON does not allow');
            case JSONC_ERRORS.InvalidSymbol: // a word that is not true, false or null, or a character that starts no token
              if (expecting === 'value') {
                if (text.charCodeAt(offset) === 0x2d)
                  return stop(offset + 1, 'invalid number: a digit must follow the minus sign');
                const literal = ['true', 'false', 'null'].find(
                  (word) => word.charCodeAt(0) === text.charCodeAt(offset),
                );
                if (literal) {
                  let k = 1;
                  while (k < literal.length && text.charCodeAt(offset + k) === literal.charCodeAt(k)) k++;
                  if (k < literal.length)
                    return offset + k >= n ? unexpected(n) : stop(offset + k, `expected ${literal}`);
                  expecting = 'next'; // the literal, then more letters
                  return unexpected(offset + k);
                }
              }
              return unexpected(offset);
            default: // a token where another was expected (or the end of the file)
              return unexpected(offset);
          }
        },
      },
      { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
    );
  } catch (error) {
    if (error !== STOP) throw error;
  }
  return found;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
