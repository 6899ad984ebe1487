/**
 * The admin API's HTTP server (node:http). Each request: route → authenticate → role grants the operation's
 * permission → workspace visible to the caller → environment in the workspace and the caller's scope (and the
 * development environment for DEV-only operations) → JSON body validated by the operation's schema → handler.
 * Every refusal is problem+json from the one error table; a fault costs a 500 whose details stay in the log.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { z } from 'zod';
import { sendProblem } from '../../shared/errors.ts';
import { StoreConflictError, type WorkspaceRecord } from '../store/store.ts';
import { recordAudit, type AuditNote } from './audit.ts';
import { authenticate, overTls, requireCsrf } from './auth.ts';
import { consoleStatic } from './console-static.ts';
import { AdminError, fromStore, fromZod, notFound } from './errors.ts';
import { Reply, type Caller, type ControlContext, type Operation } from './operation.ts';
import { anyGrants } from './permissions.ts';
import { checkQuery } from './query.ts';
import { assertResponse, responseCheckEnabled } from './response-check.ts';
import { hasEnvironment } from './scope.ts';

const MAX_BODY = 1024 * 1024;

interface Route {
  op: Operation;
  pattern: RegExp;
  params: string[];
}

export interface AdminServerOptions {
  plane: ControlContext;
  operations: readonly Operation[];
  /** Extra unauthenticated GET documents, e.g. `/api/openapi.json`. */
  documents?: Record<string, () => unknown>;
  /** Where the console's built files are (default `console/dist` of this package); served at /console/. */
  consoleDir?: string;
  /**
   * Check every success body against the operation's response schema; a mismatch is a 500 and a logged error
   * (see response-check.ts). Default: on when `NODE_ENV=test` or `GATEHOUSE_CHECK_RESPONSES=1`.
   */
  checkResponses?: boolean;
}

export function createAdminServer(options: AdminServerOptions): Server {
  const { plane } = options;
  const routes = options.operations.map(compileRoute);
  const documents = options.documents ?? {};
  const checkResponses = options.checkResponses ?? responseCheckEnabled();
  const consoleFiles = consoleStatic(options.consoleDir);

  return createServer((req, res) => {
    const started = performance.now();
    const requestId = randomUUID();
    let caller: Caller | undefined;
    handle(req, res, requestId, (c) => (caller = c)).then(
      (status) => {
        plane.logger.info(
          {
            reqId: requestId,
            method: req.method,
            path: pathOf(req),
            status,
            caller: caller?.id,
            ms: Math.round(performance.now() - started),
          },
          'admin request',
        );
      },
      (error: unknown) => {
        plane.logger.error({ reqId: requestId, err: error }, 'admin request failed');
        if (!res.headersSent)
          problem(
            res,
            requestId,
            new AdminError('GH_ERR_ADMIN_INTERNAL', 'an internal error occurred; it is logged under this request id'),
          );
        else res.destroy();
      },
    );
  });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    setCaller: (c: Caller) => void,
  ): Promise<number> {
    try {
      const path = pathOf(req);
      if (path === '/console' || path.startsWith('/console/')) return await consoleFiles.serve(req, res, path);
      if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(302, { location: '/console/', 'cache-control': 'no-store', 'content-length': '0' });
        res.end();
        return 302;
      }
      const document = documents[path];
      if (document && (req.method === 'GET' || req.method === 'HEAD')) return send(res, requestId, 200, document());
      const match = route(routes, req.method ?? 'GET', path);
      if (Array.isArray(match)) {
        return problem(
          res,
          requestId,
          new AdminError(
            'GH_ERR_ROUTE_METHOD_NOT_ALLOWED',
            `${req.method} is not allowed on ${path}; allowed: ${match.join(', ')}`,
          ),
          { allow: match.join(', ') },
        );
      }
      if (!match) throw notFound(`admin API route ${path}`);
      const { op, params } = match;

      const now = plane.now();
      let caller: Caller | undefined;
      if (op.permission !== 'public') {
        caller = await authenticate(req, plane.store, now, plane.sessions);
        setCaller(caller);
        // A browser session changes state only with its CSRF token: a forged cross-site request cannot know it.
        if (caller.session && req.method !== 'GET' && req.method !== 'HEAD') requireCsrf(req, caller.session.csrfToken);
        if (op.permission !== null && !anyGrants(caller.permissions, op.permission)) {
          throw new AdminError(
            'GH_ERR_ADMIN_FORBIDDEN',
            `this caller's role does not grant ${op.permission} (${op.method} ${op.path})`,
          );
        }
      }
      // A browser session (cookie) must send state-changing requests as JSON: a cross-site form cannot, and a
      // cross-site fetch with that content type needs a CORS preflight this API never grants.
      if (
        req.method !== 'GET' &&
        req.method !== 'HEAD' &&
        req.headers.cookie !== undefined &&
        req.headers.authorization === undefined &&
        req.headers['x-api-key'] === undefined &&
        !isJson(req)
      ) {
        throw new AdminError(
          'GH_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE',
          'requests made with a session cookie must send Content-Type: application/json (cross-site request protection)',
        );
      }
      const workspace = params.workspace !== undefined ? await resolveWorkspace(params.workspace, caller) : undefined;
      let environment = '';
      if (params.environment !== undefined) {
        environment = params.environment;
        if (!workspace!.environments.includes(environment)) throw notFound(`environment "${environment}"`);
        if (caller && !hasEnvironment(caller, environment))
          throw new AdminError(
            'GH_ERR_ADMIN_OUT_OF_SCOPE',
            `environment "${environment}" is not among this caller's environments`,
          );
        if (op.devOnly && environment !== workspace!.devEnvironment) {
          throw new AdminError(
            'GH_ERR_ADMIN_DEV_ONLY',
            `${op.id} (${op.method} ${op.path}) exists only in the development environment ${workspace!.devEnvironment}, not in ${environment}`,
          );
        }
      }
      const query = checkQuery(new URL(req.url ?? '/', 'http://admin').searchParams, op.query);
      const body = op.body ? await readBody(req, op.body, op.maxBody ?? MAX_BODY) : undefined;
      if (!op.body) req.resume();

      const note: AuditNote = {};
      const result = await op.handler({
        caller: caller as Caller,
        params,
        query,
        headers: req.headers,
        ip: req.socket.remoteAddress ?? '',
        tls: overTls(req),
        body,
        workspace: workspace as WorkspaceRecord,
        environment,
        plane,
        requestId,
        audit: note,
      });
      const reply = result instanceof Reply ? result : new Reply(op.status ?? 200, result);
      const success = reply.status >= 200 && reply.status < 300;
      if (checkResponses && op.response && reply.status !== 204 && success)
        assertResponse(op.id, op.response, reply.body, op.responseForm);
      // Every successful change by an authenticated caller is audited, here and only here.
      if (success && caller && op.method !== 'GET')
        await recordAudit(plane, {
          op,
          caller,
          workspaceId: workspace?.id ?? caller.workspaceId,
          params,
          note,
          answer: reply.body,
          requestId,
          ip: req.socket.remoteAddress ?? '',
        });
      return send(res, requestId, reply.status, reply.body, reply.headers);
    } catch (error) {
      const mapped = fromStore(error);
      if (mapped instanceof AdminError) return problem(res, requestId, mapped);
      if (error instanceof StoreConflictError)
        return problem(res, requestId, new AdminError('GH_ERR_ADMIN_CONFLICT', error.message));
      throw error;
    }
  }

  async function resolveWorkspace(ref: string, caller: Caller | undefined): Promise<WorkspaceRecord> {
    const ws = (await plane.store.getWorkspace({ id: ref })) ?? (await plane.store.getWorkspace({ name: ref }));
    // Another workspace's existence is not revealed: it is "not found" like one that does not exist.
    if (!ws || (caller && ws.id !== caller.workspaceId && !caller.operator)) throw notFound(`workspace "${ref}"`);
    return ws;
  }
}

function compileRoute(op: Operation): Route {
  const params: string[] = [];
  const source = op.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{([A-Za-z]+)\\?\}/g, (_m, name: string) => {
    params.push(name);
    return '([^/]+)';
  });
  return { op, pattern: new RegExp(`^${source}$`), params };
}

/** The operation and its path parameters; the allowed methods when only the method is wrong; undefined when no path matches. */
function route(
  routes: readonly Route[],
  method: string,
  path: string,
): { op: Operation; params: Record<string, string> } | string[] | undefined {
  const allowed: string[] = [];
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    if (r.op.method !== method) {
      allowed.push(r.op.method);
      continue;
    }
    const params: Record<string, string> = {};
    r.params.forEach((name, i) => {
      try {
        params[name] = decodeURIComponent(m[i + 1]!);
      } catch {
        throw new AdminError('GH_ERR_ADMIN_INVALID_BODY', `path: invalid percent-encoding in {${name}}`);
      }
    });
    return { op: r.op, params };
  }
  return allowed.length ? allowed : undefined;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function isJson(req: IncomingMessage): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || type.endsWith('+json');
}

async function readBody(req: IncomingMessage, schema: z.ZodType, limit: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const length = Number(req.headers['content-length'] ?? '0');
  if (length > limit)
    throw new AdminError('GH_ERR_ADMIN_BODY_TOO_LARGE', `the body has ${length} bytes; at most ${limit} are accepted`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new AdminError('GH_ERR_ADMIN_BODY_TOO_LARGE', `the body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let value: unknown = {};
  if (text.trim() !== '') {
    if (type !== 'application/json' && !type.endsWith('+json'))
      throw new AdminError(
        'GH_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE',
        `send the body as application/json, not ${type || 'an untyped body'}`,
      );
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new AdminError('GH_ERR_ADMIN_INVALID_BODY', `body: not valid JSON (${(error as Error).message})`, [
        { path: 'body', message: 'not valid JSON' },
      ]);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod('body', parsed.error);
  return parsed.data;
}

function send(
  res: ServerResponse,
  requestId: string,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): number {
  const base = { 'cache-control': 'no-store', 'x-request-id': requestId, ...headers };
  if (status === 204 || body === undefined) {
    res.writeHead(status === 200 ? 204 : status, base);
    res.end();
    return status;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...base, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return status;
}

function problem(
  res: ServerResponse,
  requestId: string,
  error: AdminError,
  extraHeaders: Record<string, string> = {},
): number {
  return sendProblem(
    res,
    {
      code: error.code,
      detail: error.message,
      headers: { ...error.headers, ...extraHeaders },
      extensions: { ...error.extensions, ...(error.errors ? { errors: error.errors } : {}) },
    },
    requestId,
    'gatehouse-admin',
  );
}
