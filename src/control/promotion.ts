/**
 * Promotion of a collection version from one environment to another (DEV → TEST → PROD): where the version is
 * served in the destination (its deployment target), and what changes there (a structural diff of the published
 * specs, for dry runs and for the answer).
 *
 * Deployment targets are per environment. A collection has one record per environment, each with its own target:
 * the cloud gateway or the edge gateway of that environment (one per environment). Promotion carries a version's
 * content, never its target: an edge gateway of DEV is not reachable from TEST, so the destination keeps the target
 * it has, or — the first time — gets the same kind of target in its own environment.
 */
import type { DeploymentTarget } from '../config/resources.ts';
import { AdminError } from './api/errors.ts';
import type { CollectionRecord, StoreOps, WorkspaceRecord } from './store/store.ts';

/** One difference between the destination's published spec and the promoted one. */
export interface SpecChange {
  /** e.g. `upstream.url`, `endpoints["GET /items"].permission`, `target`. */
  path: string;
  change: 'added' | 'removed' | 'changed';
  from?: unknown;
  to?: unknown;
}

/** The environment after `environment` in the workspace's order (DEV, TEST, PROD by default), if any. */
export function nextEnvironment(workspace: WorkspaceRecord, environment: string): string | undefined {
  const i = workspace.environments.indexOf(environment);
  return i >= 0 ? workspace.environments[i + 1] : undefined;
}

/**
 * Where a collection promoted to `to` is served: the explicit target if one is given; else the target the
 * destination collection already has; else, for a collection new to `to`, the cloud gateway when the source is on
 * the cloud gateway and the edge gateway of `to` when the source is on an edge gateway. Refused (409) when the source
 * is on an edge gateway and `to` has none.
 */
export async function destinationTarget(
  tx: StoreOps,
  workspace: WorkspaceRecord,
  to: string,
  source: DeploymentTarget,
  existing: CollectionRecord | undefined,
  explicit: DeploymentTarget | undefined,
): Promise<DeploymentTarget> {
  if (explicit) return explicit;
  if (existing) return existing.spec.target;
  if (source.type === 'cloud') return source;
  const gateway = await tx.getGateway({ workspaceId: workspace.id, environment: to });
  if (gateway) return { type: 'edge', gateway: gateway.name };
  throw new AdminError(
    'GH_ERR_ADMIN_NO_DEPLOYMENT_TARGET',
    `body.target: the collection is served by an edge gateway in its environment, and ${to} has no edge gateway: create one for ${to} (POST /api/v1/workspaces/${workspace.name}/gateways with "environment": "${to}"), or give the target in ${to}, e.g. {"type":"cloud"}`,
    [{ path: 'body.target', message: `${to} has no edge gateway; create one or give the target` }],
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** `METHOD /path` for endpoint-like items (so that a diff names endpoints, not array positions). */
function endpointKey(item: unknown): string | undefined {
  return isObject(item) && typeof item.method === 'string' && typeof item.path === 'string'
    ? `${item.method} ${item.path}`
    : undefined;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/**
 * The differences between two specs in their input form, field by field; endpoints are matched by method and path.
 * Arrays of anything else compare as one value.
 */
export function diffSpecs(before: unknown, after: unknown, path = ''): SpecChange[] {
  if (same(before, after)) return [];
  if (before === undefined) return [{ path, change: 'added', to: after }];
  if (after === undefined) return [{ path, change: 'removed', from: before }];
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) => diffSpecs(before[k], after[k], join(path, k)));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const keyed = (items: unknown[]) => {
      const keys = items.map(endpointKey);
      return keys.every((k) => k !== undefined) && new Set(keys).size === keys.length
        ? new Map(items.map((item, i) => [keys[i]!, item]))
        : undefined;
    };
    const a = keyed(before);
    const b = keyed(after);
    if (a && b) {
      const keys = [...new Set([...a.keys(), ...b.keys()])];
      return keys.flatMap((k) => diffSpecs(a.get(k), b.get(k), `${path}[${JSON.stringify(k)}]`));
    }
  }
  return [{ path, change: 'changed', from: before, to: after }];
}
