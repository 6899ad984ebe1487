/**
 * Length (about 550 lines formatted): one hand-written parser whose rules are read side by side with docs/canonical-path.md;
 * splitting the fast path from the full parser would separate code that must agree character for character.
 *
 * Canonical path first: turns the raw request target into the one path string that the router matches *and* the
 * proxy forwards, refusing every form that upstreams could read differently. The rules are documented, with the
 * reason for each, in docs/canonical-path.md.
 *
 * Parsed by hand on purpose: `new URL()` normalises differently from upstreams (it resolves `\` as `/`, decodes
 * `%2e` dot segments, keeps empty segments, …), and the whole point is that gateway and upstream see one path.
 *
 * Hot path: a plain ASCII target (no `%`, no dot segment, no `//`, no character outside the safe pchar set) is
 * checked by one charCode loop and returned as a slice of the input; everything else takes the full parser.
 *
 * Over 400 lines on purpose: one parser: its fast path and its full path stay side by side, to be read and tested
 * against each other.
 */
import type { ErrorCode } from '../../shared/errors.ts';

export interface CanonicalTarget {
  /** Canonical path: starts with '/', no dot segments, no empty segments (consecutive slashes merged), percent-escapes of unreserved chars decoded, all other escapes upper-case hex; characters outside the RFC 3986 pchar set percent-encoded (UTF-8). This is the one string that is both matched and forwarded. */
  path: string;
  /** Raw query string without the leading '?', or '' when absent. Forwarded as is (refused if it holds raw control characters, %00, raw spaces or '#'). */
  query: string;
  /** Smallest number of path segments left on the stack right after any '..' was applied; Infinity when the path had no '..'. The router refuses the request when this is below the segment depth of the matched collection's base path (GH_ERR_REQUEST_PATH_TRAVERSAL). */
  minDepthAfterDotDot: number;
}

export type CanonicalResult = { ok: true; value: CanonicalTarget } | { ok: false; code: ErrorCode; detail: string };

type Failure = { ok: false; code: ErrorCode; detail: string };

// ---------------------------------------------------------------------------------------------------------------
// Character tables (ASCII only; everything >= 0x80 is handled explicitly).

/** 1 for characters copied into the canonical path as they are: unreserved, sub-delims except ';', ':' and '@'. */
const PCHAR_SAFE = new Uint8Array(128);
/** 1 for unreserved characters (RFC 3986 §2.3): their percent-escapes are decoded. */
const UNRESERVED = new Uint8Array(128);
/** Hex value of an ASCII char, or -1. */
const HEX_VALUE = new Int8Array(128).fill(-1);
/** Fast-path classes: copied as is / '/' / '.' / '?' / anything that needs the full parser (0). */
const FAST_SLOW = 0;
const FAST_PLAIN = 1;
const FAST_SLASH = 2;
const FAST_DOT = 3;
const FAST_QUERY = 4;
const FAST = new Uint8Array(128);

/** '%00'..'%FF', upper-case. */
const PCT: string[] = [];

{
  const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  for (const ch of alnum + '-._~') UNRESERVED[ch.charCodeAt(0)] = 1;
  for (const ch of alnum + "-._~!$&'()*+,=:@") PCHAR_SAFE[ch.charCodeAt(0)] = 1;
  const hex = '0123456789ABCDEF';
  for (let i = 0; i < 16; i++) {
    HEX_VALUE[hex.charCodeAt(i)] = i;
    HEX_VALUE[hex.toLowerCase().charCodeAt(i)] = i;
  }
  for (let b = 0; b < 256; b++) PCT.push('%' + hex[b >> 4] + hex[b & 15]);
  for (let c = 0; c < 128; c++) if (PCHAR_SAFE[c] === 1) FAST[c] = FAST_PLAIN;
  FAST[0x2f] = FAST_SLASH;
  FAST[0x2e] = FAST_DOT;
  FAST[0x3f] = FAST_QUERY;
}

const SLASH = 0x2f;
const DOT = 0x2e;
const QUESTION = 0x3f;
const PERCENT = 0x25;
const HASH = 0x23;

const DOUBLE_ENCODED = /%25[0-9A-Fa-f]{2}/;
const DETAIL_MAX = 64;

function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? (HEX_VALUE[c] as number) : -1;
}

/** Quotes (part of) caller input for a detail sentence: truncated, JSON-escaped. */
function show(s: string): string {
  return JSON.stringify(s.length > DETAIL_MAX ? s.slice(0, DETAIL_MAX) + '…' : s);
}

function fail(code: ErrorCode, detail: string): Failure {
  return { ok: false, code, detail };
}

function ok(path: string, query: string, minDepthAfterDotDot: number): CanonicalResult {
  return { ok: true, value: { path, query, minDepthAfterDotDot } };
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/** rawTarget = req.url as Node's http server gives it; host = the Host header value (may be undefined). */
export function canonicalize(rawTarget: string, host: string | undefined): CanonicalResult {
  if (rawTarget.charCodeAt(0) === SLASH) return fromPath(rawTarget, 0);
  return absoluteForm(rawTarget, host);
}

/** Decodes one canonical segment for use as a path parameter value (decodeURIComponent-like; canonical segments never fail). */
export function decodeSegment(segment: string): string {
  // Canonical segments only hold pchar characters and well-formed, valid-UTF-8 escapes, so this cannot throw for
  // them. It does throw (URIError) for a non-canonical string with a broken escape: a caller bug, not a request.
  return segment.indexOf('%') === -1 ? segment : decodeURIComponent(segment);
}

/** Number of segments of a canonical path or base path: '/' -> 0, '/a/b' -> 2. */
export function segmentDepth(path: string): number {
  let depth = 0;
  let inSegment = false;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) === SLASH) inSegment = false;
    else if (!inSegment) {
      inSegment = true;
      depth++;
    }
  }
  return depth;
}

// ---------------------------------------------------------------------------------------------------------------
// Target forms

/** `t[start]` is '/': the path runs to the first '?' (or the end), the query after it. */
function fromPath(t: string, start: number): CanonicalResult {
  // Fast path: one scan; bail out to the full parser on anything that is not plainly canonical already.
  const n = t.length;
  let slash = start; // index of the last '/'
  let i = start + 1;
  for (; i < n; i++) {
    const c = t.charCodeAt(i);
    const k = c < 128 ? (FAST[c] as number) : FAST_SLOW;
    if (k === FAST_PLAIN) continue;
    if (k === FAST_SLASH) {
      if (slash === i - 1) return slowPath(t, start);
      slash = i;
    } else if (k === FAST_DOT) {
      if (slash === i - 1 && isDotSegmentAt(t, i, n)) return slowPath(t, start);
    } else if (k === FAST_QUERY) {
      break;
    } else {
      return slowPath(t, start);
    }
  }
  const path = start === 0 && i === n ? t : t.slice(start, i);
  if (i === n) return ok(path, '', Infinity);
  return withQuery(t, i + 1, path, Infinity);
}

/**
 * A '.' at a segment start at index i: does the segment need the full parser? '.' and '..' are resolved there, and
 * '...' (or more dots) refused; any segment starting with '..' goes there, which is rare.
 */
function isDotSegmentAt(t: string, i: number, n: number): boolean {
  const c = i + 1 < n ? t.charCodeAt(i + 1) : SLASH;
  return c === SLASH || c === QUESTION || c === DOT;
}

function absoluteForm(t: string, host: string | undefined): CanonicalResult {
  if (t === '*')
    return fail(
      'GH_ERR_REQUEST_MALFORMED_TARGET',
      'Asterisk-form request targets ("*") are not served by the gateway.',
    );
  let schemeEnd: number;
  let defaultPort: number;
  if (startsWithLower(t, 'http://')) {
    schemeEnd = 7;
    defaultPort = 80;
  } else if (startsWithLower(t, 'https://')) {
    schemeEnd = 8;
    defaultPort = 443;
  } else {
    return fail(
      'GH_ERR_REQUEST_MALFORMED_TARGET',
      `The request target ${show(t)} is neither an origin-form path nor an absolute http(s) URL.`,
    );
  }
  const n = t.length;
  let j = schemeEnd;
  while (j < n) {
    const c = t.charCodeAt(j);
    if (c === SLASH || c === QUESTION || c === HASH) break;
    j++;
  }
  if (j < n && t.charCodeAt(j) === HASH)
    return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The request target contains a fragment (#).');
  const authority = t.slice(schemeEnd, j);
  if (authority.indexOf('@') !== -1)
    return fail(
      'GH_ERR_REQUEST_MALFORMED_TARGET',
      'The absolute-form request target carries userinfo (user@host), which HTTP does not allow.',
    );
  const target = parseAuthority(authority);
  if (target === null)
    return fail(
      'GH_ERR_REQUEST_MALFORMED_TARGET',
      `The absolute-form request target has an invalid authority ${show(authority)}.`,
    );
  if (host !== undefined) {
    const header = parseAuthority(host);
    if (
      header === null ||
      header.host !== target.host ||
      (header.port ?? defaultPort) !== (target.port ?? defaultPort)
    ) {
      return fail(
        'GH_ERR_REQUEST_HOST_MISMATCH',
        `The request target's authority ${show(authority)} differs from the Host header ${show(host)}.`,
      );
    }
  }
  if (j === n) return ok('/', '', Infinity);
  if (t.charCodeAt(j) === QUESTION) return withQuery(t, j + 1, '/', Infinity);
  return fromPath(t, j);
}

function startsWithLower(t: string, prefix: string): boolean {
  if (t.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if ((t.charCodeAt(i) | 0x20) !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

const REG_NAME = /^[A-Za-z0-9\-._~!$&'()*+,;=%]+$/;
const IP_LITERAL = /^\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]$/;

/** host[:port] → lower-cased host and numeric port (null when absent or empty), or null when malformed. */
function parseAuthority(a: string): { host: string; port: number | null } | null {
  let hostPart: string;
  let portPart: string;
  if (a.charCodeAt(0) === 0x5b /* [ */) {
    const close = a.indexOf(']');
    if (close === -1) return null;
    hostPart = a.slice(0, close + 1);
    const rest = a.slice(close + 1);
    if (rest !== '' && rest.charCodeAt(0) !== 0x3a /* : */) return null;
    portPart = rest.slice(1);
    if (!IP_LITERAL.test(hostPart)) return null;
  } else {
    const colon = a.indexOf(':');
    if (colon !== a.lastIndexOf(':')) return null;
    hostPart = colon === -1 ? a : a.slice(0, colon);
    portPart = colon === -1 ? '' : a.slice(colon + 1);
    if (!REG_NAME.test(hostPart)) return null;
  }
  let port: number | null = null;
  if (portPart !== '') {
    if (!/^[0-9]{1,5}$/.test(portPart)) return null;
    port = Number(portPart);
    if (port > 65535) return null;
  }
  return { host: hostPart.toLowerCase(), port };
}

// ---------------------------------------------------------------------------------------------------------------
// Query

/** Sentinel from scanQuery: the query is acceptable but holds raw non-ASCII characters to percent-encode. */
const NEEDS_ENCODING = 1;

function scanQuery(t: string, start: number): Failure | typeof NEEDS_ENCODING | null {
  const n = t.length;
  let result: typeof NEEDS_ENCODING | null = null;
  for (let i = start; i < n; i++) {
    const c = t.charCodeAt(i);
    if (c > 0x20 && c < 0x7f) {
      if (c === PERCENT) {
        const h1 = hexAt(t, i + 1);
        const h2 = hexAt(t, i + 2);
        // A stray '%' is tolerated in the query (it is forwarded, never decoded or matched by the gateway).
        if (h1 >= 0 && h2 >= 0) {
          const v = h1 * 16 + h2;
          // Encoded control characters are data inside a query value (a text search may hold %0A) and reach the
          // upstream still encoded; only NUL is refused, since it truncates strings in many backends.
          if (v === 0)
            return fail('GH_ERR_REQUEST_CONTROL_CHARACTER', 'The query contains a percent-encoded NUL (%00).');
          i += 2;
        }
      } else if (c === HASH) {
        return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The request target contains a fragment (#).');
      }
    } else if (c < 0x20 || c === 0x7f) {
      return fail('GH_ERR_REQUEST_CONTROL_CHARACTER', 'The query contains a control character.');
    } else if (c === 0x20) {
      return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The query contains a raw space.');
    } else {
      result = NEEDS_ENCODING;
    }
  }
  return result;
}

function withQuery(t: string, qStart: number, path: string, minDepth: number): CanonicalResult {
  const scanned = scanQuery(t, qStart);
  if (scanned === null) return ok(path, t.slice(qStart), minDepth);
  if (scanned === NEEDS_ENCODING) {
    const query = encodeNonAscii(t, qStart);
    return query === null
      ? fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The query contains a character that is not valid Unicode.')
      : ok(path, query, minDepth);
  }
  return scanned;
}

/** Percent-encodes (UTF-8) the raw non-ASCII characters of t from start; null on a lone surrogate. */
function encodeNonAscii(t: string, start: number): string | null {
  let out = '';
  let run = start;
  for (let i = start; i < t.length; i++) {
    if (t.charCodeAt(i) < 0x80) continue;
    out += t.slice(run, i);
    const cp = t.codePointAt(i) as number;
    const enc = utf8Escapes(cp);
    if (enc === null) return null;
    out += enc;
    if (cp > 0xffff) i++;
    run = i + 1;
  }
  return out + t.slice(run);
}

/** '%XX' escapes of the UTF-8 encoding of a code point >= 0x80; null for a lone surrogate. */
function utf8Escapes(cp: number): string | null {
  if (cp < 0x800) return (PCT[0xc0 | (cp >> 6)] as string) + PCT[0x80 | (cp & 0x3f)];
  if (cp >= 0xd800 && cp <= 0xdfff) return null;
  if (cp < 0x10000)
    return (PCT[0xe0 | (cp >> 12)] as string) + PCT[0x80 | ((cp >> 6) & 0x3f)] + PCT[0x80 | (cp & 0x3f)];
  return (
    (PCT[0xf0 | (cp >> 18)] as string) +
    PCT[0x80 | ((cp >> 12) & 0x3f)] +
    PCT[0x80 | ((cp >> 6) & 0x3f)] +
    PCT[0x80 | (cp & 0x3f)]
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Full path parser

/**
 * `t[start]` is '/'. Decodes once (unreserved escapes only), validates escapes and UTF-8, refuses ambiguous forms,
 * merges empty segments and resolves dot segments (RFC 3986 §5.2.4), tracking how low '..' took the stack.
 */
function slowPath(t: string, start: number): CanonicalResult {
  let end = t.indexOf('?', start);
  if (end === -1) end = t.length;
  const stack: string[] = [];
  let minDepth = Infinity;
  let trailingSlash = false;
  let i = start;
  while (i < end) {
    i++; // the '/' that opens this segment
    let seg = '';
    let run = i;
    let hasPct25 = false;
    // UTF-8 validation of escaped bytes: continuation bytes still expected, and the range allowed for the next one.
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    /** The code point being assembled from escaped UTF-8 bytes. */
    let cp = 0;
    for (; i < end; i++) {
      const c = t.charCodeAt(i);
      if (c === SLASH) break;
      if (c < 128 && PCHAR_SAFE[c] === 1) {
        if (need > 0) return badUtf8();
        continue;
      }
      seg += t.slice(run, i);
      if (c === PERCENT) {
        const h1 = i + 2 < end ? hexAt(t, i + 1) : -1;
        const h2 = i + 2 < end ? hexAt(t, i + 2) : -1;
        if (h1 < 0 || h2 < 0)
          return fail(
            'GH_ERR_REQUEST_MALFORMED_TARGET',
            `The path contains an invalid percent-escape ${show(t.slice(i, Math.min(i + 3, end)))}.`,
          );
        const v = h1 * 16 + h2;
        if (v >= 0x80) {
          if (need > 0) {
            if (v < lo || v > hi) return badUtf8();
            need--;
            lo = 0x80;
            hi = 0xbf;
            cp = (cp << 6) | (v & 0x3f);
            if (need === 0) {
              const ambiguous = compatibilityDelimiter(cp);
              if (ambiguous !== undefined) return ambiguous;
            }
          } else if (v >= 0xc2 && v <= 0xdf) {
            need = 1;
            cp = v & 0x1f;
          } else if (v >= 0xe0 && v <= 0xef) {
            need = 2;
            cp = v & 0x0f;
            if (v === 0xe0) lo = 0xa0;
            else if (v === 0xed) hi = 0x9f; // no UTF-16 surrogates
          } else if (v >= 0xf0 && v <= 0xf4) {
            need = 3;
            cp = v & 0x07;
            if (v === 0xf0) lo = 0x90;
            else if (v === 0xf4) hi = 0x8f; // nothing above U+10FFFF
          } else return badUtf8();
          seg += PCT[v];
        } else {
          if (need > 0) return badUtf8();
          if (v < 0x20 || v === 0x7f)
            return fail(
              'GH_ERR_REQUEST_CONTROL_CHARACTER',
              `The path contains a percent-encoded control character (${t.slice(i, i + 3)}).`,
            );
          if (v === 0x2f || v === 0x5c)
            return fail(
              'GH_ERR_REQUEST_ENCODED_SLASH',
              `The path contains an encoded ${v === 0x2f ? 'slash' : 'backslash'} (${t.slice(i, i + 3)}).`,
            );
          if (v === 0x3b)
            return fail(
              'GH_ERR_REQUEST_PATH_PARAMETER',
              `The path contains an encoded semicolon (${t.slice(i, i + 3)}).`,
            );
          if (v === QUESTION || v === HASH)
            return fail(
              'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT',
              `The path contains an encoded ${v === HASH ? "'#'" : "'?'"} (${t.slice(i, i + 3)}): a backend that decodes the path would end it there.`,
            );
          if (v === PERCENT) hasPct25 = true;
          seg += UNRESERVED[v] === 1 ? String.fromCharCode(v) : PCT[v];
        }
        i += 2;
      } else {
        if (need > 0) return badUtf8();
        if (c === 0x5c) return fail('GH_ERR_REQUEST_ENCODED_SLASH', 'The path contains a backslash (\\).');
        if (c === 0x3b) return fail('GH_ERR_REQUEST_PATH_PARAMETER', 'The path contains a semicolon (;).');
        if (c < 0x20 || c === 0x7f)
          return fail('GH_ERR_REQUEST_CONTROL_CHARACTER', 'The path contains a control character.');
        if (c === HASH) return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The request target contains a fragment (#).');
        if (c < 0x80) {
          seg += PCT[c]; // outside pchar: space, '"', '<', '>', '`', '{', '}', '|', '^', '[', ']'
        } else {
          const raw = t.codePointAt(i) as number;
          const enc = utf8Escapes(raw);
          if (enc === null)
            return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The path contains a character that is not valid Unicode.');
          const ambiguous = compatibilityDelimiter(raw);
          if (ambiguous !== undefined) return ambiguous;
          seg += enc;
          if (raw > 0xffff) i++;
        }
      }
      run = i + 1;
    }
    if (need > 0) return badUtf8();
    seg += t.slice(run, i);

    if (seg === '' || seg === '.') {
      trailingSlash = true; // merged or removed; a trailing one leaves the path ending in '/'
    } else if (seg === '..') {
      if (stack.length === 0)
        return fail('GH_ERR_REQUEST_PATH_TRAVERSAL', 'A ".." segment climbs above the root of the path.');
      stack.pop();
      if (stack.length < minDepth) minDepth = stack.length;
      trailingSlash = true;
    } else if (onlyDots(seg)) {
      // '...' and longer: Windows and some file servers trim trailing dots ('...' → '..' or ''), others do not.
      return fail(
        'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT',
        `The path contains a segment made only of dots (${show(seg)}), which backends read differently.`,
      );
    } else {
      // '%25' then two hex digits — raw or decoded from escapes ('%25%34%31') — would be read as an escape by an
      // upstream that decodes twice.
      if (hasPct25 && DOUBLE_ENCODED.test(seg))
        return fail(
          'GH_ERR_REQUEST_DOUBLE_ENCODING',
          'The path contains %25 followed by two hex digits (double percent-encoding).',
        );
      stack.push(seg);
      trailingSlash = false;
    }
  }
  const path = stack.length === 0 ? '/' : '/' + stack.join('/') + (trailingSlash ? '/' : '');
  if (end === t.length) return ok(path, '', minDepth);
  return withQuery(t, end + 1, path, minDepth);
}

function badUtf8(): Failure {
  return fail('GH_ERR_REQUEST_MALFORMED_TARGET', 'The percent-escapes in the path do not decode to valid UTF-8.');
}

/** Whether a (non-empty) segment is made only of '.' characters. */
function onlyDots(seg: string): boolean {
  for (let i = 0; i < seg.length; i++) if (seg.charCodeAt(i) !== DOT) return false;
  return true;
}

/**
 * ASCII characters a backend may read as a delimiter, a dot segment, an escape or a path parameter once it applies
 * Unicode compatibility normalisation (NFKC, as Python's and Java's URL and file-name handling often do) to a
 * decoded path: a character whose NFKC form holds one of them is refused. The code each maps to.
 */
const NFKC_DELIMITERS: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ['/', 'GH_ERR_REQUEST_ENCODED_SLASH'],
  ['\\', 'GH_ERR_REQUEST_ENCODED_SLASH'],
  ['?', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
  ['#', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
  ['.', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
  [';', 'GH_ERR_REQUEST_PATH_PARAMETER'],
  ['%', 'GH_ERR_REQUEST_DOUBLE_ENCODING'],
]);
/** Verdicts by code point (only non-ASCII ones reach here, and only on the full parser): null when harmless. */
const compatibilityVerdicts = new Map<number, Failure | null>();

/** The refusal for a non-ASCII code point whose NFKC form holds a delimiter (U+FF0F '／' → '/'), or undefined. */
function compatibilityDelimiter(cp: number): Failure | undefined {
  let verdict = compatibilityVerdicts.get(cp);
  if (verdict === undefined) {
    verdict = null;
    const normalized = String.fromCodePoint(cp).normalize('NFKC');
    for (const [ch, code] of NFKC_DELIMITERS) {
      if (normalized.includes(ch)) {
        const hex = cp.toString(16).toUpperCase().padStart(4, '0');
        verdict = fail(
          code,
          `The path contains U+${hex}, which Unicode compatibility normalisation (NFKC) turns into ${JSON.stringify(normalized)}: a backend may read it as ${JSON.stringify(ch)}.`,
        );
        break;
      }
    }
    if (compatibilityVerdicts.size < 4096) compatibilityVerdicts.set(cp, verdict);
  }
  return verdict ?? undefined;
}

/**
 * A path parameter's value as a backend would read it, for comparing with a claim or a resource id: the decoded
 * segment, or undefined when Unicode compatibility normalisation (NFKC) would change it (full-width letters,
 * ligatures, …). Such a value could name one resource to the gateway and another to a backend that normalises,
 * so it never equals anything. Canonical segments only (see `decodeSegment`).
 */
export function comparableParam(segment: string): string | undefined {
  const value = decodeSegment(segment);
  return segment.indexOf('%') === -1 || value === value.normalize('NFKC') ? value : undefined;
}
