/**
 * One admin API operation = one object: method, path template, the permission a caller's role must grant, the
 * body and response schemas, and the handler. The server routes and authorizes from these; the OpenAPI document is
 * generated from the same objects, so the two cannot drift.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { z } from 'zod';
import type { ControlPlaneEndpoints } from '../../config/edge.ts';
import type { Store, WorkspaceRecord } from '../store/store.ts';
import type { TelemetryIngest } from '../telemetry/ingest.ts';
import type { AuditNote } from './audit.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Who is calling: an API client (token) or a console user (session cookie). */
export interface Caller {
  readonly kind: 'client' | 'user';
  readonly id: string;
  /** The client's name, or the user's name or email: how the audit log shows who acted. */
  readonly displayName?: string;
  readonly workspaceId: string;
  /** Acts on every workspace of the installation. */
  readonly operator: boolean;
  /** Permission patterns held (see permissions.ts). */
  readonly permissions: readonly string[];
  /** Environments and projects the caller may see and touch; `*` means all. */
  readonly environments: readonly string[];
  readonly projects: readonly string[];
  /** Present when the caller signed in with a console session cookie (never for a token). */
  readonly session?: CallerSession;
}

/** The console session a user caller came with. */
export interface CallerSession {
  /** SHA-256 hex of the cookie's value: the session's key in the store. */
  readonly hash: string;
  /** What state-changing requests must send as `X-CSRF-Token` (derived from the cookie's value, never stored). */
  readonly csrfToken: string;
  /** When the session ends unless used again (ISO). */
  readonly idleExpiresAt: string;
  /** When the session ends however active (ISO). */
  readonly expiresAt: string;
}

/** How long console sessions live (control-plane settings `sessionIdleTimeout` and `sessionLifetime`). */
export interface SessionSettings {
  readonly idleMs: number;
  readonly lifetimeMs: number;
}

/** What the admin API needs of the edge-gateway machinery (CA, endpoints, live streams). */
export interface EdgeContext {
  /** `sha256:<hex>` of the control plane CA's public key, carried in install commands. */
  readonly caPin: string;
  /** The endpoints gateways dial, as advertised (they may differ from the listen addresses behind a proxy). */
  readonly endpoints: ControlPlaneEndpoints;
  /** This control plane's version: the newest gateway version it knows of. */
  readonly softwareVersion: string;
  /** Ends the live sync streams of a gateway at once (it was deleted). */
  disconnectGateway(gatewayId: string): void;
}

/** What handlers reach: the store and the change notifier. */
export interface ControlContext {
  readonly edge: EdgeContext;
  readonly store: Store;
  readonly logger: Logger;
  /** Recompiles the workspace's snapshots and resolves once the cloud gateway serves them. */
  changed(workspaceId: string): Promise<void>;
  /**
   * A collection's relationship data changed (committed): resolves once the cloud gateway serves it; edge
   * gateways and the other replicas are told (entity-feed.ts).
   */
  entitiesChanged(collectionId: string): Promise<void>;
  now(): number;
  /** Base URL of the cloud gateway, for links in responses (e.g. `http://127.0.0.1:8080`). */
  readonly cloudUrl: string;
  /** What this process heard from gateways (telemetry stats, recent access events); absent: nothing is collected. */
  readonly telemetry?: Pick<TelemetryIngest, 'stats' | 'accessEvents'>;
  /** Console session expiry; absent: 30 minutes idle, 12 hours absolute. */
  readonly sessions?: SessionSettings;
  /** The installation's token settings: the algorithm of new signing keys and how long tokens live. */
  readonly tokenSettings?: { readonly algorithm: 'EdDSA' | 'ES256'; readonly ttl: number };
  /** Where alert destinations' webhook calls connect (the egress policy); absent: undici's global dispatcher. */
  readonly webhookDispatcher?: Dispatcher;
}

export interface RequestInfo<B> {
  readonly caller: Caller;
  readonly params: Readonly<Record<string, string>>;
  /** The query string, already checked against the operation's `query` schema. */
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The peer's address (the socket's; the admin API trusts no forwarding header). */
  readonly ip: string;
  /** The request came over TLS (session cookies are then marked Secure). */
  readonly tls: boolean;
  readonly body: B;
  /** The workspace named by `{workspace}` in the path, already checked against the caller. */
  readonly workspace: WorkspaceRecord;
  /** The environment named by `{environment}` in the path, checked against the workspace and the caller. */
  readonly environment: string;
  readonly plane: ControlContext;
  readonly requestId: string;
  /** What the handler tells the audit log about its change (resource id, state before and after); see audit.ts. */
  readonly audit: AuditNote;
}

/** A handler's answer: a body for the operation's success status, or an explicit status and headers. */
export class Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, body: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

export interface Operation<B extends z.ZodType = z.ZodType> {
  readonly id: string;
  readonly method: Method;
  /** e.g. `/api/v1/workspaces/{workspace}/clients/{client}` */
  readonly path: string;
  readonly summary: string;
  readonly tag: string;
  /** The permission a client's role must grant; `null`: any authenticated caller; `'public'`: no authentication. */
  readonly permission: string | null | 'public';
  /** Exists only in the workspace's development environment (`{environment}` must be it). */
  readonly devOnly?: boolean;
  readonly body?: B;
  /**
   * The query parameters it reads, as string-valued fields (see query.ts): checked before the handler runs (the
   * handler reads them from `query`) and listed in the OpenAPI document. Absent: it takes none.
   */
  readonly query?: z.ZodObject;
  readonly response?: z.ZodType;
  /**
   * Which side of `response` the body is: `output` (default), or `input` for a resource answered in the form it
   * is written in, so that what GET returns can be sent back (collections: durations as "30s", not milliseconds).
   * The OpenAPI document and the response check (response-check.ts) read the schema on this side.
   */
  readonly responseForm?: 'input' | 'output';
  /**
   * What the audit log records a successful change as, when the path does not say it (audit.ts): the resource type,
   * and the path parameter naming its id (default: the id the answer carries).
   */
  readonly audit?: { readonly resourceType: string; readonly idParam?: string };
  /** Largest request body in bytes (default 1 MiB; an OpenAPI import takes more). */
  readonly maxBody?: number;
  /** Success status (default 200; 204 sends no body). */
  readonly status?: number;
  handler(req: RequestInfo<z.output<B>>): Promise<unknown>;
}

/** Keeps the body type of each operation while collecting them in one array. */
export function operation<B extends z.ZodType>(op: Operation<B>): Operation {
  return op as unknown as Operation;
}
