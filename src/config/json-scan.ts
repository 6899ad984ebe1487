/**
 * What JSON.parse does not tell about JSON text: where a syntax error is and what it is, in words that never quote
 * the text, and duplicate object keys (`scanJson`, on jsonc-parser's scanner). Read by the config file loader
 * (load.ts) and the NDJSON clients file (clients-file.ts).
 */
import { visit as visitJson } from 'jsonc-parser';
import { formatPath } from './schema.ts';

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
