/**
 * The web console's files on the admin port: `GET /console/…` from `console/dist` (the Vite build), with the SPA
 * fallback (a path under /console/ that names no file and does not look like one answers index.html), content
 * types, caching (hashed files under assets/ are immutable; index.html is revalidated every time), gzip or brotli
 * for text (a precompressed `.br`/`.gz` sibling when the build wrote one, else compressed once and kept), and on
 * every answer a strict Content-Security-Policy and the other headers that keep the page from being framed,
 * sniffed or leaking its URL. A path is decoded once and refused when it could leave the directory.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

/** `console/dist` of the package this file belongs to (src/control/api/ → the package root). */
export const CONSOLE_DIST = fileURLToPath(new URL('../../../console/dist/', import.meta.url));

/** No inline script or style, nothing from another origin, never framed. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt', '.webmanifest']);
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Files kept in memory (with their compressed forms) once read; the build's files are few and small. */
const MAX_CACHED_BYTES = 4 * 1024 * 1024;

/** Shown when console/dist has no index.html: no script at all, styled by nothing. */
const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse console not built</title></head>
<body><h1>The Gatehouse console is not built</h1>
<p>The control plane serves the web console from <code>console/dist</code>, which does not exist yet.
Build it in the Gatehouse directory with:</p>
<pre>npm run console:build</pre>
<p>(<code>npm ci</code> runs it too), then reload this page. The admin API works without it: see
<a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>
`;

interface CachedFile {
  readonly mtimeMs: number;
  readonly size: number;
  readonly etag: string;
  readonly raw: Buffer;
  gzip?: Buffer;
  br?: Buffer;
}

export interface ConsoleStatic {
  /** Answers a request whose path is `/console` or under `/console/`; returns the status sent. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<number>;
}

export function consoleStatic(dir: string = CONSOLE_DIST): ConsoleStatic {
  const root = resolve(dir);
  const cache = new Map<string, CachedFile>();

  async function load(file: string): Promise<CachedFile | undefined> {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const seen = cache.get(file);
    if (seen && seen.mtimeMs === info.mtimeMs && seen.size === info.size) return seen;
    const raw = await readFile(file);
    const etag = `"${createHash('sha256').update(raw).digest('base64url').slice(0, 27)}"`;
    const entry: CachedFile = { mtimeMs: info.mtimeMs, size: info.size, etag, raw };
    if (info.size <= MAX_CACHED_BYTES) cache.set(file, entry);
    return entry;
  }

  /** The body in the best encoding the client accepts: a precompressed sibling, else compressed here once. */
  async function encoded(
    file: string,
    entry: CachedFile,
    accept: string,
  ): Promise<{ body: Buffer; encoding?: 'br' | 'gzip' }> {
    if (!COMPRESSIBLE.has(extname(file)) || entry.size < 512) return { body: entry.raw };
    const accepts = (name: string) => acceptedEncodings(accept).has(name);
    if (accepts('br')) {
      entry.br ??=
        (await readFile(`${file}.br`).catch(() => undefined)) ??
        brotliCompressSync(entry.raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } });
      return { body: entry.br, encoding: 'br' };
    }
    if (accepts('gzip')) {
      entry.gzip ??= (await readFile(`${file}.gz`).catch(() => undefined)) ?? gzipSync(entry.raw, { level: 9 });
      return { body: entry.gzip, encoding: 'gzip' };
    }
    return { body: entry.raw };
  }

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    headers: Record<string, string>,
    body?: Buffer | string,
  ): number {
    const length = body === undefined ? 0 : Buffer.byteLength(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      ...headers,
      ...(body !== undefined ? { 'content-length': String(length) } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return status;
  }

  function plain(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    text: string,
    extra: Record<string, string> = {},
  ) {
    return send(
      req,
      res,
      status,
      { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra },
      `${text}\n`,
    );
  }

  async function file(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    cacheControl: string,
  ): Promise<number | undefined> {
    const entry = await load(path);
    if (!entry) return undefined;
    const headers: Record<string, string> = {
      'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
      'cache-control': cacheControl,
      etag: entry.etag,
      vary: 'Accept-Encoding',
    };
    if (req.headers['if-none-match'] === entry.etag) return send(req, res, 304, headers);
    const { body, encoding } = await encoded(path, entry, String(req.headers['accept-encoding'] ?? ''));
    if (encoding) headers['content-encoding'] = encoding;
    return send(req, res, 200, headers, body);
  }

  return {
    async serve(req, res, path) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return plain(req, res, 405, `${req.method} is not allowed on the console; use GET`, { allow: 'GET, HEAD' });
      const segments = decodeSegments(path.slice('/console'.length));
      if (segments === undefined) return plain(req, res, 400, 'the path is malformed or leaves the console directory');
      const target = join(root, ...segments);
      if (target !== root && !target.startsWith(root + sep))
        return plain(req, res, 400, 'the path is malformed or leaves the console directory');
      const index = join(root, 'index.html');
      const isAsset = segments[0] === 'assets';
      if (segments.length > 0) {
        const sent = await file(req, res, target, isAsset ? IMMUTABLE : 'no-cache');
        if (sent !== undefined) return sent;
        // A missing file (hashed asset of an older build, a typo) is a 404, not the page: only app routes fall back.
        if (isAsset || /\.[A-Za-z0-9]{1,12}$/.test(segments.at(-1)!))
          return plain(req, res, 404, `no such console file: /console/${segments.join('/')}`);
      }
      const sent = await file(req, res, index, 'no-cache');
      if (sent !== undefined) return sent;
      return send(
        req,
        res,
        503,
        { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' },
        NOT_BUILT,
      );
    },
  };
}

/**
 * The path after `/console` as decoded segments (empty ones dropped), or undefined when it is malformed or could
 * name something outside the directory: invalid percent-encoding, an encoded or raw backslash or slash inside a
 * segment, NUL or control characters, `.` or `..` segments, or a dot file.
 */
function decodeSegments(rest: string): string[] | undefined {
  if (rest !== '' && !rest.startsWith('/')) return undefined;
  const out: string[] = [];
  for (const raw of rest.split('/')) {
    if (raw === '') continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (/[/\\\u0000-\u001f\u007f]/.test(segment) || segment.startsWith('.')) return undefined;
    out.push(segment);
  }
  return out;
}

/** The codings an Accept-Encoding header accepts (q above 0). */
function acceptedEncodings(header: string): Set<string> {
  const out = new Set<string>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    if (name && (q === undefined || Number(q.slice(2)) > 0)) out.add(name);
  }
  return out;
}
