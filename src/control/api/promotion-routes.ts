/**
 * Admin API: promote a collection version from one environment to another (by default the next one in the
 * workspace's order: DEV → TEST → PROD), in one transaction, with a dry run that answers the diff without writing.
 * The destination keeps its own deployment target (see ../promotion.ts); the promoted version becomes its draft and
 * its newest published version, which its gateway serves once the call returns.
 */
import { z } from 'zod';
import { DeploymentTargetSchema } from '../../config/resources.ts';
import { EnvironmentSchema, NameSchema } from '../../config/schema.ts';
import { nowIso } from '../ids.ts';
import { destinationTarget, diffSpecs, nextEnvironment } from '../promotion.ts';
import { checkSpec, encodeSpec, newCollection, nextDraft, publish, sameSpec } from './collection-routes.ts';
import { conflict, invalid } from './errors.ts';
import { requireKnownEnvironment, visibleCollection } from './lookup.ts';
import { operation, Reply, type Operation } from './operation.ts';
import { requireEnvironment } from './scope.ts';

const C = '/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}';

export const PromoteInputSchema = z.strictObject({
  /** The destination environment (default: the one after `{environment}` in the workspace's order). */
  to: EnvironmentSchema.optional(),
  /** The version of `{environment}` to promote (default: its published version). */
  version: z.int().positive().optional(),
  /**
   * Where the destination serves it (default: the target the destination collection has; for a collection new to the
   * destination, the cloud gateway, or the destination's edge gateway when the source is on an edge gateway).
   */
  target: DeploymentTargetSchema.optional(),
  /** Answer what would change, and write nothing. */
  dryRun: z.boolean().default(false),
});

export const SpecChangeSchema = z.strictObject({
  /** The field, e.g. `upstream.url`, `endpoints["GET /items"].permission`, `target`. */
  path: z.string(),
  change: z.enum(['added', 'removed', 'changed']),
  from: z.unknown().optional(),
  to: z.unknown().optional(),
});

export const PromotionSchemaOut = z.strictObject({
  collection: NameSchema,
  project: NameSchema,
  from: z.strictObject({ environment: EnvironmentSchema, version: z.int().positive() }),
  to: z.strictObject({
    environment: EnvironmentSchema,
    target: DeploymentTargetSchema,
    /** The version the destination served before (absent: the collection was not published there). */
    previousVersion: z.int().positive().optional(),
    /** The version it serves now (absent on a dry run). */
    version: z.int().positive().optional(),
  }),
  dryRun: z.boolean(),
  /** The destination's published spec changes (false: it already serves this content; no version is made). */
  changed: z.boolean(),
  /** The destination's draft held unpublished edits, which the promoted version replaces. */
  draftReplaced: z.boolean(),
  /** From the destination's published spec to the promoted one; on a first promotion, every field as added. */
  changes: z.array(SpecChangeSchema),
});

export const promotionOperations: Operation[] = [
  operation({
    id: 'promoteCollection',
    method: 'POST',
    path: `${C}/promote`,
    summary:
      'Promote a published collection version to the next environment (or `to`), keeping the destination its own deployment target; `dryRun` answers the diff only',
    tag: 'Collections',
    permission: 'admin:deploy',
    body: PromoteInputSchema,
    response: PromotionSchemaOut,
    async handler({ caller, workspace, environment, params, body, plane }) {
      const to = body.to ?? nextEnvironment(workspace, environment);
      if (to === undefined)
        throw invalid(
          'body.to',
          `${environment} is the last environment of the workspace (${workspace.environments.join(' → ')}); name the destination with "to"`,
        );
      if (to === environment) throw invalid('body.to', `must be another environment than ${environment}`);
      requireKnownEnvironment(workspace, to, 'body.to');
      requireEnvironment(caller, to, 'body.to');
      const result = await plane.store.transaction(async (tx) => {
        const source = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        const versionNumber = body.version ?? source.publishedVersion;
        if (versionNumber === undefined)
          throw invalid(
            'body.version',
            `collection "${source.name}" has no published version in ${environment}: publish it first (POST ${C.replace('{workspace}', workspace.name).replace('{environment}', environment).replace('{collection}', source.name)}/publish)`,
          );
        const version = await tx.getCollectionVersion(source.id, versionNumber);
        if (!version)
          throw invalid(
            'body.version',
            `collection "${source.name}" has no version ${versionNumber} in ${environment}`,
          );
        const existing = await tx.getCollection({ workspaceId: workspace.id, environment: to, name: source.name });
        // Promotion never moves a collection between projects.
        if (existing && existing.project !== source.project)
          throw conflict(
            `collection "${source.name}" already exists in ${to} in project "${existing.project}" (here: "${source.project}"); rename one of them`,
          );
        const target = await destinationTarget(tx, workspace, to, version.spec.target, existing, body.target);
        const spec = { ...version.spec, target };
        await checkSpec(tx, caller, workspace, to, spec, existing?.id);
        const before = existing?.publishedVersion
          ? (await tx.getCollectionVersion(existing.id, existing.publishedVersion))?.spec
          : undefined;
        const changed = !before || !sameSpec(before, spec);
        const draftReplaced =
          !!existing && !sameSpec(existing.spec, spec) && (!before || !sameSpec(existing.spec, before));
        const summary = {
          collection: source.name,
          project: source.project,
          from: { environment, version: versionNumber },
          dryRun: body.dryRun,
          changed,
          draftReplaced,
          changes: diffSpecs(before ? encodeSpec(before) : {}, encodeSpec(spec)),
        };
        const previous = existing?.publishedVersion ? { previousVersion: existing.publishedVersion } : {};
        if (body.dryRun) return { created: false, body: { ...summary, to: { environment: to, target, ...previous } } };
        const at = nowIso(plane.now());
        let record = existing;
        if (!record) {
          record = newCollection(workspace, to, source.name, source.project, spec, at);
          await tx.insertCollection(record);
        } else if (!sameSpec(record.spec, spec)) {
          const next = nextDraft(record, source.project, spec, at);
          if (!(await tx.updateCollection(next, record.revision)))
            throw conflict(`collection "${record.name}" in ${to} changed meanwhile; retry`);
          record = next;
        }
        const published = await publish(tx, record, caller.id, plane.now());
        return {
          created: published.created,
          body: { ...summary, to: { environment: to, target, ...previous, version: published.version.version } },
        };
      });
      if (result.created) await plane.changed(workspace.id);
      return new Reply(result.created ? 201 : 200, result.body);
    },
  }),
];
