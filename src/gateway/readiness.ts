/**
 * What a gateway instance says about itself on its operations listener: `/healthz`, `/readyz` with its named
 * checks (the configuration in force, and each dependency's state), and `/metrics`.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { GatewayMetrics } from './observability/metrics.ts';

/** One dependency's state in `/readyz`. `failing` makes the instance not ready; `degraded` does not. */
export interface ReadinessCheck {
  status: 'ok' | 'degraded' | 'failing';
  /** For the operator: what is wrong and what the gateway does meanwhile (never a secret). */
  detail?: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export function createOpsServer(metrics: GatewayMetrics, readiness: () => Readiness): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const r = readiness();
      return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', checks: r.checks });
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        () => json(res, 500, { status: 'error' }),
      );
      return;
    }
    json(res, 404, { status: 'not found' });
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
