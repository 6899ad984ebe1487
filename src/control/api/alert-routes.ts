/**
 * Admin API: alert rules and webhook destinations. A rule sends the alerts of one kind (optionally of one gateway,
 * and for authentication-failure spikes from a threshold on) to destinations; a destination is a URL that receives
 * each alert as JSON, signed with the destination's secret (shown once, at creation and on rotation). "Send test"
 * POSTs a signed test alert to a destination now and answers what happened (HTTP status or error). The alerts
 * themselves are listed by `listAlerts` (telemetry-routes.ts). `{rule}` and `{destination}` are names or ids.
 *
 * Over 400 lines on purpose: rules name destinations, and the operations of both share the lookups, visibility
 * checks and conflict mapping above them, so they read together.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { NameSchema } from '../../config/schema.ts';
import { AlertKind } from '../alerts/alerting.ts';
import { newDestinationSecret, postSigned } from '../alerts/destinations.ts';
import { newId, nowIso } from '../ids.ts';
import type { AlertDestinationRecord, AlertRuleRecord, StoreOps, WorkspaceRecord } from '../store/store.ts';
import { CLOUD_GATEWAY_ID } from '../telemetry/ingest.ts';
import { fromStore, invalid, notFound } from './errors.ts';
import { visibleGateway } from './lookup.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { hasEnvironment } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';
const READ = 'admin:alerts:read';
const WRITE = 'admin:alerts:write';
/** How long "send test" waits for the receiver. */
const TEST_TIMEOUT_MS = 5_000;

const KINDS = Object.values(AlertKind) as [AlertKind, ...AlertKind[]];

const WebhookUrlSchema = z
  .string()
  .max(2048)
  .refine((v) => URL.canParse(v) && ['http:', 'https:'].includes(new URL(v).protocol), {
    message: 'must be an http:// or https:// URL',
  })
  .refine((v) => !URL.canParse(v) || (new URL(v).username === '' && new URL(v).password === ''), {
    message: 'must not carry a user name or password: receivers check the signature made with the secret instead',
  });

export const AlertRuleInputSchema = z.strictObject({
  name: NameSchema,
  kind: z.enum(KINDS).describe('The alert kind the rule matches'),
  gateway: z
    .string()
    .min(1)
    .optional()
    .describe('Only the alerts of this edge gateway (name or id) or of the cloud gateway (`cloud`); absent: all'),
  threshold: z
    .int()
    .min(1)
    .max(1_000_000)
    .optional()
    .describe(
      '`auth_failure_spike` only: authentication failures per minute from which it matches (the lowest enabled rule threshold raises the alert)',
    ),
  destinations: z.array(z.string().min(1)).max(20).default([]).describe('Destination names or ids'),
  enabled: z.boolean().default(true),
});

export const AlertRuleSchemaOut = z.strictObject({
  id: z.string(),
  name: NameSchema,
  kind: z.string(),
  gateway: z.string().optional(),
  gatewayName: z.string().optional(),
  threshold: z.int().optional(),
  destinations: z.array(z.strictObject({ id: z.string(), name: z.string() })),
  enabled: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const AlertDestinationInputSchema = z.strictObject({
  name: NameSchema,
  url: WebhookUrlSchema.describe('Where alerts are POSTed (http or https; redirects are not followed)'),
});

export const AlertDestinationPatchSchema = z.strictObject({
  name: NameSchema.optional(),
  url: WebhookUrlSchema.optional(),
  rotateSecret: z.boolean().optional().describe('Issue a new signing secret (answered this once)'),
});

export const AlertDestinationSchemaOut = z.strictObject({
  id: z.string(),
  name: NameSchema,
  url: z.string(),
  /** The rules that send to it. */
  rules: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const AlertDestinationWithSecretSchema = z.strictObject({
  destination: AlertDestinationSchemaOut,
  /** The signing secret (`whsec_…`), shown this once. */
  secret: z.string(),
});

export const SendTestResultSchema = z.strictObject({
  ok: z.boolean().describe('The receiver answered 2xx'),
  status: z.int().optional().describe('The HTTP status it answered'),
  error: z.string().optional().describe('Why it failed: the status, a timeout or the network error'),
  durationMs: z.int(),
  deliveryId: z.string().describe('Sent as `X-Gatehouse-Delivery`'),
});

const STORE_CONFLICTS = {
  'alertRule.name': 'body.name: an alert rule with this name already exists in this workspace',
  'alertDestination.name': 'body.name: an alert destination with this name already exists in this workspace',
};

/**
 * Whether the caller may see the rule: a rule about one edge gateway is visible to callers of that gateway's
 * environment (as its alerts are); every other rule to every caller with the permission.
 */
async function ruleVisible(tx: StoreOps, caller: Caller, r: AlertRuleRecord): Promise<boolean> {
  if (r.gatewayId === undefined || r.gatewayId === CLOUD_GATEWAY_ID) return true;
  const g = await tx.getGateway({ id: r.gatewayId });
  return g === undefined ? caller.environments.includes('*') : hasEnvironment(caller, g.environment);
}

async function findRule(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  ref: string,
): Promise<AlertRuleRecord> {
  const r = (await tx.getAlertRule(workspace.id, { name: ref })) ?? (await tx.getAlertRule(workspace.id, { id: ref }));
  if (!r || !(await ruleVisible(tx, caller, r))) throw notFound(`alert rule "${ref}"`);
  return r;
}

async function findDestination(tx: StoreOps, workspace: WorkspaceRecord, ref: string): Promise<AlertDestinationRecord> {
  const d =
    (await tx.getAlertDestination(workspace.id, { name: ref })) ??
    (await tx.getAlertDestination(workspace.id, { id: ref }));
  if (!d) throw notFound(`alert destination "${ref}"`);
  return d;
}

/** The rule's fields from its input: gateway and destination references resolved, the threshold checked. */
async function ruleFields(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  body: z.output<typeof AlertRuleInputSchema>,
): Promise<Pick<AlertRuleRecord, 'name' | 'kind' | 'gatewayId' | 'threshold' | 'destinationIds' | 'enabled'>> {
  if (body.threshold !== undefined && body.kind !== AlertKind.authFailureSpike)
    throw invalid('body.threshold', `only an ${AlertKind.authFailureSpike} rule has a threshold`);
  let gatewayId: string | undefined;
  if (body.gateway !== undefined)
    gatewayId =
      body.gateway === CLOUD_GATEWAY_ID
        ? CLOUD_GATEWAY_ID
        : (
            await visibleGateway(tx, caller, workspace, body.gateway).catch(() => {
              throw invalid(
                'body.gateway',
                `unknown edge gateway "${body.gateway}" (or "cloud" for the cloud gateway)`,
              );
            })
          ).id;
  const destinationIds: string[] = [];
  for (const [i, ref] of body.destinations.entries()) {
    const d =
      (await tx.getAlertDestination(workspace.id, { name: ref })) ??
      (await tx.getAlertDestination(workspace.id, { id: ref }));
    if (!d) throw invalid(`body.destinations[${i}]`, `unknown alert destination "${ref}": create it first`);
    if (!destinationIds.includes(d.id)) destinationIds.push(d.id);
  }
  return {
    name: body.name,
    kind: body.kind,
    ...(gatewayId !== undefined ? { gatewayId } : {}),
    ...(body.threshold !== undefined ? { threshold: body.threshold } : {}),
    destinationIds,
    enabled: body.enabled,
  };
}

async function toRule(tx: StoreOps, r: AlertRuleRecord) {
  const destinations = new Map((await tx.listAlertDestinations(r.workspaceId)).map((d) => [d.id, d.name]));
  let gatewayName: string | undefined;
  if (r.gatewayId === CLOUD_GATEWAY_ID) gatewayName = CLOUD_GATEWAY_ID;
  else if (r.gatewayId !== undefined)
    gatewayName = (await tx.getGateway({ id: r.gatewayId }))?.name ?? `(deleted gateway ${r.gatewayId})`;
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    ...(r.gatewayId !== undefined ? { gateway: r.gatewayId, gatewayName } : {}),
    ...(r.threshold !== undefined ? { threshold: r.threshold } : {}),
    destinations: r.destinationIds
      .filter((id) => destinations.has(id))
      .map((id) => ({ id, name: destinations.get(id)! })),
    enabled: r.enabled,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

function toDestination(d: AlertDestinationRecord, rules: readonly AlertRuleRecord[]) {
  return {
    id: d.id,
    name: d.name,
    url: d.url,
    rules: rules.filter((r) => r.destinationIds.includes(d.id)).map((r) => r.name),
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export const alertOperations: Operation[] = [
  operation({
    id: 'listAlertRules',
    method: 'GET',
    path: `${W}/alert-rules`,
    summary: 'List the alert rules: which alerts (kind, gateway, threshold) go to which destinations',
    tag: 'Alerts',
    permission: READ,
    response: z.object({ items: z.array(AlertRuleSchemaOut) }),
    async handler({ caller, workspace, plane }) {
      const items = [];
      for (const r of await plane.store.listAlertRules(workspace.id))
        if (await ruleVisible(plane.store, caller, r)) items.push(await toRule(plane.store, r));
      return { items };
    },
  }),
  operation({
    id: 'createAlertRule',
    method: 'POST',
    path: `${W}/alert-rules`,
    summary: 'Create an alert rule',
    tag: 'Alerts',
    permission: WRITE,
    body: AlertRuleInputSchema,
    response: AlertRuleSchemaOut,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      return plane.store
        .transaction(async (tx) => {
          const at = nowIso(plane.now());
          const rule: AlertRuleRecord = {
            id: newId('alr'),
            workspaceId: workspace.id,
            ...(await ruleFields(tx, caller, workspace, body)),
            createdAt: at,
            updatedAt: at,
          };
          await tx.insertAlertRule(rule);
          return toRule(tx, rule);
        })
        .catch((error: unknown) => {
          throw fromStore(error, STORE_CONFLICTS);
        });
    },
  }),
  operation({
    id: 'getAlertRule',
    method: 'GET',
    path: `${W}/alert-rules/{rule}`,
    summary: 'Get an alert rule',
    tag: 'Alerts',
    permission: READ,
    response: AlertRuleSchemaOut,
    async handler({ caller, workspace, params, plane }) {
      return toRule(plane.store, await findRule(plane.store, caller, workspace, params.rule!));
    },
  }),
  operation({
    id: 'updateAlertRule',
    method: 'PUT',
    path: `${W}/alert-rules/{rule}`,
    summary: 'Replace an alert rule (every field; absent optional ones are removed)',
    tag: 'Alerts',
    permission: WRITE,
    body: AlertRuleInputSchema,
    response: AlertRuleSchemaOut,
    async handler({ caller, workspace, params, body, plane, audit }) {
      return plane.store
        .transaction(async (tx) => {
          const current = await findRule(tx, caller, workspace, params.rule!);
          audit.before = await toRule(tx, current);
          const rule: AlertRuleRecord = {
            id: current.id,
            workspaceId: workspace.id,
            ...(await ruleFields(tx, caller, workspace, body)),
            createdAt: current.createdAt,
            updatedAt: nowIso(plane.now()),
          };
          await tx.updateAlertRule(rule);
          return toRule(tx, rule);
        })
        .catch((error: unknown) => {
          throw fromStore(error, STORE_CONFLICTS);
        });
    },
  }),
  operation({
    id: 'deleteAlertRule',
    method: 'DELETE',
    path: `${W}/alert-rules/{rule}`,
    summary: 'Delete an alert rule: its alerts are still raised and listed, but no longer sent to its destinations',
    tag: 'Alerts',
    permission: WRITE,
    status: 204,
    async handler({ caller, workspace, params, plane, audit }) {
      await plane.store.transaction(async (tx) => {
        const rule = await findRule(tx, caller, workspace, params.rule!);
        audit.before = await toRule(tx, rule);
        await tx.deleteAlertRule(workspace.id, rule.id);
      });
      return undefined;
    },
  }),
  operation({
    id: 'listAlertDestinations',
    method: 'GET',
    path: `${W}/alert-destinations`,
    summary: 'List the webhook destinations of alerts (their signing secrets are never shown again)',
    tag: 'Alerts',
    permission: READ,
    response: z.object({ items: z.array(AlertDestinationSchemaOut) }),
    async handler({ workspace, plane }) {
      const rules = await plane.store.listAlertRules(workspace.id);
      return { items: (await plane.store.listAlertDestinations(workspace.id)).map((d) => toDestination(d, rules)) };
    },
  }),
  operation({
    id: 'createAlertDestination',
    method: 'POST',
    path: `${W}/alert-destinations`,
    summary:
      'Create a webhook destination; the answer holds its signing secret (HMAC-SHA256 of each body), shown this once',
    tag: 'Alerts',
    permission: WRITE,
    body: AlertDestinationInputSchema,
    response: AlertDestinationWithSecretSchema,
    status: 201,
    audit: { resourceType: 'alert-destination' },
    async handler({ workspace, body, plane, audit }) {
      const at = nowIso(plane.now());
      const d: AlertDestinationRecord = {
        id: newId('ald'),
        workspaceId: workspace.id,
        name: body.name,
        url: body.url,
        secret: newDestinationSecret(),
        createdAt: at,
        updatedAt: at,
      };
      await plane.store.insertAlertDestination(d).catch((error: unknown) => {
        throw fromStore(error, STORE_CONFLICTS);
      });
      audit.resourceId = d.id;
      return { destination: toDestination(d, []), secret: d.secret };
    },
  }),
  operation({
    id: 'updateAlertDestination',
    method: 'PATCH',
    path: `${W}/alert-destinations/{destination}`,
    summary: 'Rename a destination, change its URL, or rotate its signing secret (the new one is answered this once)',
    tag: 'Alerts',
    permission: WRITE,
    body: AlertDestinationPatchSchema,
    response: z.strictObject({ destination: AlertDestinationSchemaOut, secret: z.string().optional() }),
    async handler({ workspace, params, body, plane, audit }) {
      return plane.store
        .transaction(async (tx) => {
          const current = await findDestination(tx, workspace, params.destination!);
          const rules = await tx.listAlertRules(workspace.id);
          audit.before = toDestination(current, rules);
          const d: AlertDestinationRecord = {
            ...current,
            ...(body.name !== undefined ? { name: body.name } : {}),
            ...(body.url !== undefined ? { url: body.url } : {}),
            ...(body.rotateSecret ? { secret: newDestinationSecret() } : {}),
            updatedAt: nowIso(plane.now()),
          };
          await tx.updateAlertDestination(d);
          return { destination: toDestination(d, rules), ...(body.rotateSecret ? { secret: d.secret } : {}) };
        })
        .catch((error: unknown) => {
          throw fromStore(error, STORE_CONFLICTS);
        });
    },
  }),
  operation({
    id: 'deleteAlertDestination',
    method: 'DELETE',
    path: `${W}/alert-destinations/{destination}`,
    summary:
      'Delete a webhook destination: the rules sending to it stop doing so (they stay), and its pending deliveries are dropped',
    tag: 'Alerts',
    permission: WRITE,
    status: 204,
    async handler({ workspace, params, plane, audit }) {
      await plane.store.transaction(async (tx) => {
        const d = await findDestination(tx, workspace, params.destination!);
        const rules = await tx.listAlertRules(workspace.id);
        audit.before = toDestination(d, rules);
        for (const r of rules)
          if (r.destinationIds.includes(d.id))
            await tx.updateAlertRule({
              ...r,
              destinationIds: r.destinationIds.filter((id) => id !== d.id),
              updatedAt: nowIso(plane.now()),
            });
        await tx.deleteAlertDestination(workspace.id, d.id);
      });
      return undefined;
    },
  }),
  operation({
    id: 'sendTestAlert',
    method: 'POST',
    path: `${W}/alert-destinations/{destination}/send-test`,
    summary:
      'POST a signed test alert (kind `test`) to a destination now and answer how the receiver answered (status, or the error)',
    tag: 'Alerts',
    permission: WRITE,
    audit: { resourceType: 'alert-destination', idParam: 'destination' },
    response: SendTestResultSchema,
    async handler({ workspace, params, plane, caller }) {
      const d = await findDestination(plane.store, workspace, params.destination!);
      const now = plane.now();
      const deliveryId = `dlv_test_${randomUUID().replaceAll('-', '')}`;
      const body = JSON.stringify({
        id: `alt_test_${randomUUID().replaceAll('-', '')}`,
        kind: 'test',
        state: 'raised',
        message: `test alert sent from the Gatehouse console or admin API by ${caller.displayName ?? caller.id}`,
        workspace: workspace.id,
        raisedAt: nowIso(now),
        details: { test: true, destination: d.name },
      });
      const outcome = await postSigned(d, body, {
        deliveryId,
        now,
        timeoutMs: TEST_TIMEOUT_MS,
        ...(plane.webhookDispatcher !== undefined && { dispatcher: plane.webhookDispatcher }),
      });
      return { ...outcome, deliveryId };
    },
  }),
];
