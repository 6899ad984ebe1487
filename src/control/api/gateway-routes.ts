/**
 * Admin API: edge gateways. One gateway per workspace environment (any number of instances share its identity),
 * installed with Docker or Helm. Creating a gateway — and regenerating its install command — answers with a
 * one-time registration token inside the install command, shown this once and stored only as its SHA-256.
 * Deleting a gateway revokes its certificates, ends its live streams and removes its edge scope. A caller sees and
 * manages only the gateways of its environments; `{gateway}` is the gateway's name or id.
 */
import { z } from 'zod';
import { CaPinSchema } from '../../config/edge.ts';
import { EnvironmentSchema, NameSchema } from '../../config/schema.ts';
import { snapshotScope } from '../compile/compile.ts';
import { describeGateway, issueInstallCommand, renameGateway } from '../gateways.ts';
import { newId, nowIso } from '../ids.ts';
import type { GatewayRecord } from '../store/store.ts';
import { conflict, fromStore, invalid } from './errors.ts';
import { requireKnownEnvironment, visibleGateway } from './lookup.ts';
import { operation, type ControlContext, type Operation } from './operation.ts';
import { hasEnvironment, requireEnvironment } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';
const G = `${W}/gateways/{gateway}`;

/** How the gateway runs: a Docker container, or the Helm chart on Kubernetes. */
export const InstallMethodSchema = z.enum(['docker', 'helm']);

export const GatewayInputSchema = z.strictObject({
  name: NameSchema,
  environment: EnvironmentSchema,
  installMethod: InstallMethodSchema.default('docker'),
});

export const GatewayPatchSchema = z.strictObject({ name: NameSchema });

export const GatewayInstanceSchemaOut = z.strictObject({
  instanceId: z.string(),
  hostname: z.string().optional(),
  /** Connected, and heard from within the last 30 seconds. */
  online: z.boolean(),
  /** Not online but seen within the last 24 hours: it keeps serving its cached snapshot (fallback mode). */
  fallback: z.boolean(),
  softwareVersion: z.string(),
  /** The snapshot version it serves (0: none yet). */
  appliedVersion: z.number().int(),
  nackedVersion: z.number().int().optional(),
  lastError: z.string().optional(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  lastSyncedAt: z.string().optional(),
  /** How many snapshot versions it is behind the newest published to its gateway (0: in sync). */
  configBehindBy: z.number().int(),
});

/** The gateway's configuration against the newest snapshot published to it. */
export const ConfigSyncSchemaOut = z.strictObject({
  /** in_sync: every online instance serves the newest; behind: one does not; unknown: no instance online or no snapshot. */
  state: z.enum(['in_sync', 'behind', 'unknown']),
  /** The newest snapshot version published to the gateway (its environment's collections deployed to it); 0: none. */
  latestVersion: z.number().int(),
  /** Versions the furthest-behind online instance lags. */
  behindBy: z.number().int(),
});

export const GatewaySchemaOut = z.strictObject({
  id: z.string(),
  name: NameSchema,
  environment: EnvironmentSchema,
  installMethod: InstallMethodSchema,
  /** online: an instance is connected; fallback: none is, but one was seen in the last 24 hours; else offline. */
  status: z.enum(['online', 'offline', 'fallback']),
  instancesOnline: z.number().int(),
  /** Instances known (online, in fallback or offline); `instances` lists them unless the list was asked without. */
  instancesTotal: z.number().int(),
  /** Software versions of the online instances. */
  versions: z.array(z.string()),
  /** The newest configuration (snapshot) version an online instance serves; 0: none. */
  configVersion: z.number().int(),
  configSync: ConfigSyncSchemaOut,
  /** When an instance last applied a snapshot. */
  lastSyncedAt: z.string().optional(),
  /** When the gateway's newest unrevoked certificate expires (renewed over the live channel before that). */
  certificateExpiresAt: z.string().optional(),
  /** Present when an online instance runs a version older than the control plane's. */
  updateAvailable: z
    .strictObject({
      version: z.string(),
      /** The command for the gateway's install method. */
      command: z.string(),
      /** The command for each install method. */
      commands: z.strictObject({ docker: z.string(), helm: z.string() }),
      /** The release notes on the web. */
      releaseNotes: z.string(),
      /** The release notes from this control plane (listReleaseNotes since the oldest version running). */
      releaseNotesPath: z.string(),
    })
    .optional(),
  instances: z.array(GatewayInstanceSchemaOut),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const InstallCommandSchemaOut = z.strictObject({
  /** The one-time registration token (`ghr_…`), also inside the commands. Shown this once. */
  token: z.string(),
  /** The token stops working at this time (5 minutes) or when used, whichever comes first. */
  expiresAt: z.string(),
  caPin: CaPinSchema,
  bootstrapUrl: z.string(),
  /** For the gateway's install method, to copy and paste. */
  command: z.string(),
  /** `gatehouse gateway bootstrap …` alone, for a machine with the gatehouse command. */
  localCommand: z.string(),
});

export const GatewayWithInstallSchema = z.strictObject({ gateway: GatewaySchemaOut, install: InstallCommandSchemaOut });

const STORE_CONFLICTS = {
  'gateway.name': 'body.name: an edge gateway with this name already exists in this workspace',
  'gateway.environment':
    'body.environment: this environment already has an edge gateway (one per environment; it may run any number of instances)',
};

function scopeOf(g: GatewayRecord): string {
  return snapshotScope(g.workspaceId, g.environment, { type: 'edge', gateway: g.name });
}

/** Gateways as the API answers them, in a fixed number of reads whatever their count (no read per gateway). */
async function toResources(plane: ControlContext, gateways: readonly GatewayRecord[], workspaceId: string) {
  if (gateways.length === 0) return [];
  const now = plane.now();
  const one = gateways.length === 1 ? gateways[0]! : undefined;
  const [instances, certificates, latest] = await Promise.all([
    one ? plane.store.listGatewayInstances(one.id) : plane.store.listWorkspaceGatewayInstances(workspaceId),
    one ? plane.store.listGatewayCertificates(one.id) : plane.store.listWorkspaceGatewayCertificates(workspaceId),
    plane.store.latestSnapshotVersions(gateways.map(scopeOf)),
  ]);
  const instancesOf = Map.groupBy(instances, (i) => i.gatewayId);
  const certificateOf = new Map<string, string>();
  // Latest expiry first: the first valid one of each gateway is its newest.
  for (const c of certificates)
    if (c.revokedAt === undefined && Date.parse(c.notAfter) > now && !certificateOf.has(c.gatewayId))
      certificateOf.set(c.gatewayId, c.notAfter);
  return gateways.map((g) => {
    const certificateExpiresAt = certificateOf.get(g.id);
    return describeGateway(g, instancesOf.get(g.id) ?? [], plane.edge, now, {
      ...(certificateExpiresAt ? { certificateExpiresAt } : {}),
      latestConfigVersion: latest.get(scopeOf(g)) ?? 0,
    });
  });
}

async function toResource(plane: ControlContext, g: GatewayRecord) {
  return (await toResources(plane, [g], g.workspaceId))[0]!;
}

export const gatewayOperations: Operation[] = [
  operation({
    id: 'listGateways',
    method: 'GET',
    path: `${W}/gateways`,
    summary:
      "List the edge gateways of the caller's environments: instances online, versions, update availability, configuration in sync, last synced (`?instances=none`: each gateway's `instances` left empty, for a summary of many gateways; `instancesTotal` still counts them)",
    tag: 'Gateways',
    permission: 'admin:gateways:read',
    query: z.object({
      instances: z
        .enum(['all', 'none'])
        .optional()
        .describe('`none`: each gateway without its instance rows (counts only), for a summary of many gateways'),
    }),
    response: z.object({ items: z.array(GatewaySchemaOut) }),
    async handler({ caller, workspace, plane, query }) {
      const instances = query.get('instances');
      if (instances !== null && instances !== 'none' && instances !== 'all')
        throw invalid('query.instances', 'must be "none" (no instance rows) or "all" (the default)');
      const visible = (await plane.store.listGateways(workspace.id)).filter((g) =>
        hasEnvironment(caller, g.environment),
      );
      const items = await toResources(plane, visible, workspace.id);
      return { items: instances === 'none' ? items.map((g) => ({ ...g, instances: [] })) : items };
    },
  }),
  operation({
    id: 'createGateway',
    method: 'POST',
    path: `${W}/gateways`,
    summary:
      'Create the edge gateway of an environment; the answer holds its install command with a one-time registration token (5 minutes)',
    tag: 'Gateways',
    permission: 'admin:gateways:write',
    body: GatewayInputSchema,
    response: GatewayWithInstallSchema,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      requireKnownEnvironment(workspace, body.environment, 'body.environment');
      requireEnvironment(caller, body.environment);
      const now = plane.now();
      const { gateway, install } = await plane.store
        .transaction(async (tx) => {
          const existing = await tx.getGateway({ workspaceId: workspace.id, environment: body.environment });
          if (existing)
            throw conflict(
              `body.environment: ${body.environment} already has an edge gateway, "${existing.name}" (one per environment; it may run any number of instances)`,
            );
          const at = nowIso(now);
          const g: GatewayRecord = {
            id: newId('gw'),
            workspaceId: workspace.id,
            environment: body.environment,
            name: body.name,
            installMethod: body.installMethod,
            createdAt: at,
            updatedAt: at,
          };
          await tx.insertGateway(g);
          return { gateway: g, install: await issueInstallCommand(tx, g, plane.edge, now) };
        })
        .catch((error: unknown) => {
          throw fromStore(error, STORE_CONFLICTS);
        });
      // The gateway's edge scope (its environment's clients, no collections yet) exists before it first connects.
      await plane.changed(workspace.id);
      return { gateway: await toResource(plane, gateway), install };
    },
  }),
  operation({
    id: 'getGateway',
    method: 'GET',
    path: G,
    summary: 'Get an edge gateway with its instances',
    tag: 'Gateways',
    permission: 'admin:gateways:read',
    response: GatewaySchemaOut,
    async handler({ caller, workspace, params, plane }) {
      return toResource(plane, await visibleGateway(plane.store, caller, workspace, params.gateway!));
    },
  }),
  operation({
    id: 'renameGateway',
    method: 'PATCH',
    path: G,
    summary:
      'Rename an edge gateway; collections deployed to it follow (drafts edited, published versions republished with the new target)',
    tag: 'Gateways',
    permission: 'admin:gateways:write',
    body: GatewayPatchSchema,
    response: GatewaySchemaOut,
    async handler({ caller, workspace, params, body, plane }) {
      const { gateway } = await plane.store
        .transaction(async (tx) =>
          renameGateway(
            tx,
            await visibleGateway(tx, caller, workspace, params.gateway!),
            body.name,
            caller.id,
            plane.now(),
          ),
        )
        .catch((error: unknown) => {
          throw fromStore(error, STORE_CONFLICTS);
        });
      // Edge scopes are named after their gateway: recompile even when no collection was retargeted.
      await plane.changed(workspace.id);
      return toResource(plane, gateway);
    },
  }),
  operation({
    id: 'deleteGateway',
    method: 'DELETE',
    path: G,
    summary:
      'Delete an edge gateway: its certificates are revoked and its instances disconnected at once; collections deployed to it are served nowhere',
    tag: 'Gateways',
    permission: 'admin:gateways:write',
    status: 204,
    async handler({ caller, workspace, params, plane }) {
      const g = await visibleGateway(plane.store, caller, workspace, params.gateway!);
      await plane.store.deleteGateway(g.id, nowIso(plane.now()));
      plane.edge.disconnectGateway(g.id);
      await plane.changed(workspace.id);
      return undefined;
    },
  }),
  operation({
    id: 'regenerateGatewayInstallCommand',
    method: 'POST',
    path: `${G}/install-command`,
    summary:
      "Issue a new install command (a fresh one-time registration token); the gateway's unused tokens stop working",
    tag: 'Gateways',
    permission: 'admin:gateways:write',
    audit: { resourceType: 'gateway', idParam: 'gateway' },
    response: GatewayWithInstallSchema,
    async handler({ caller, workspace, params, plane }) {
      const now = plane.now();
      const { gateway, install } = await plane.store.transaction(async (tx) => {
        const g = await visibleGateway(tx, caller, workspace, params.gateway!);
        return { gateway: g, install: await issueInstallCommand(tx, g, plane.edge, now) };
      });
      return { gateway: await toResource(plane, gateway), install };
    },
  }),
];
