/**
 * Reading the declarative gateway config file (YAML or JSON). Every problem is reported as a `ConfigError`
 * that says what and where (file, field path, line when the parser knows it); nothing half-valid is returned.
 * Messages never quote the file's text: a value next to a syntax error may be a secret.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { isAlias, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { lineAndColumn, scanJson, syntaxErrorAt } from './json-scan.ts';
import { formatIssues, GatewayFileSchema, type GatewayFile } from './schema.ts';

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

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
