/**
 * Prometheus metrics of one gateway process (prom-client), with Prometheus naming. Per-endpoint label children
 * are resolved once and cached, so recording a request is a couple of property reads and additions.
 */
import client from 'prom-client';
import { channels, type AuthFailureEvent, type RateLimitedEvent, type UpstreamErrorEvent } from './channels.ts';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface RouteChildren {
  duration: client.Histogram.Internal<string>;
  byStatus: Map<number, client.Counter.Internal>;
}

export class GatewayMetrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'collection' | 'route' | 'method' | 'status'>;
  readonly duration: client.Histogram<'collection' | 'route'>;
  readonly authFailures: client.Counter<'reason' | 'collection'>;
  readonly rateLimited: client.Counter<'scope' | 'collection'>;
  readonly upstreamErrors: client.Counter<'collection' | 'code'>;
  readonly configReloads: client.Counter<'result'>;
  readonly configInfo: client.Gauge<'version'>;
  readonly keys: client.Gauge;
  #routes = new Map<string, RouteChildren>();
  #unsubscribe: (() => void)[] = [];

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_process_' });
    this.requests = new client.Counter({ name: 'gatehouse_requests_total', help: 'Requests handled, by collection, route template, method and status.', labelNames: ['collection', 'route', 'method', 'status'], registers });
    this.duration = new client.Histogram({ name: 'gatehouse_request_duration_seconds', help: 'Time from request to the end of the response, by collection and route template.', labelNames: ['collection', 'route'], buckets: LATENCY_BUCKETS, registers });
    this.authFailures = new client.Counter({ name: 'gatehouse_auth_failures_total', help: 'Requests refused by authentication or authorization, by reason (error code).', labelNames: ['reason', 'collection'], registers });
    this.rateLimited = new client.Counter({ name: 'gatehouse_rate_limited_total', help: 'Requests refused by a rate limit, by scope (key, client, org).', labelNames: ['scope', 'collection'], registers });
    this.upstreamErrors = new client.Counter({ name: 'gatehouse_upstream_errors_total', help: 'Upstream connection failures and timeouts, by error code.', labelNames: ['collection', 'code'], registers });
    this.configReloads = new client.Counter({ name: 'gatehouse_config_reloads_total', help: 'Configuration applications, by result (applied, rejected).', labelNames: ['result'], registers });
    this.configInfo = new client.Gauge({ name: 'gatehouse_config_info', help: 'The configuration version in force (value is always 1).', labelNames: ['version'], registers });
    this.keys = new client.Gauge({ name: 'gatehouse_api_keys', help: 'API keys in the configuration in force.', registers });

    const sub = <T>(channel: { subscribe(fn: (m: unknown) => void): void; unsubscribe(fn: (m: unknown) => void): void }, fn: (event: T) => void) => {
      const listener = (m: unknown) => fn(m as T);
      channel.subscribe(listener);
      this.#unsubscribe.push(() => channel.unsubscribe(listener));
    };
    sub<AuthFailureEvent>(channels.authFailure, (e) => this.authFailures.labels(e.reason, e.collection).inc());
    sub<RateLimitedEvent>(channels.rateLimited, (e) => this.rateLimited.labels(e.scope, e.collection).inc());
    sub<UpstreamErrorEvent>(channels.upstreamError, (e) => this.upstreamErrors.labels(e.collection, e.code).inc());
  }

  /** Records one finished request. `route` is the endpoint's template ('' when none matched). */
  observe(collection: string, route: string, method: string, status: number, seconds: number): void {
    const id = `${collection} ${method} ${route}`;
    let children = this.#routes.get(id);
    if (!children) {
      if (this.#routes.size > 10_000) this.#routes.clear();
      children = { duration: this.duration.labels(collection, route), byStatus: new Map() };
      this.#routes.set(id, children);
    }
    children.duration.observe(seconds);
    let counter = children.byStatus.get(status);
    if (!counter) children.byStatus.set(status, (counter = this.requests.labels(collection, route, method, String(status))));
    counter.inc();
  }

  setConfig(version: string, keys: number): void {
    this.configInfo.reset();
    this.configInfo.labels(version).set(1);
    this.keys.set(keys);
  }

  close(): void {
    for (const fn of this.#unsubscribe) fn();
    this.#unsubscribe = [];
  }
}
