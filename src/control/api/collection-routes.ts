/**
 * Length (about 410 lines): the collection operations (draft, publish, rollback, deploy, delete) share
 * their reference and scope checks and the record helpers below.
 *
 * Admin API: API collections of one environment. Drafts are edited freely; `publish` freezes the draft as the
 * next numbered version, which is what gateways serve. Publishing an earlier version is a rollback: it becomes the
 * newest version again (history is never rewritten). Project deployment copies a project's published collections
 * from the development environment to another environment in one transaction.
 */
import { z } from 'zod';
import {
  CollectionInputSchema,
  CollectionSchemaOut,
  CollectionVersionSchema,
  DeployInputSchema,
  PublishInputSchema,
  type CollectionSpec,
  type DeploymentTarget,
} from '../../config/resources.ts';
import { encodeCollection } from '../../config/snapshot-encoding.ts';
import { newId, nowIso } from '../ids.ts';
import { destinationTarget } from '../promotion.ts';
import type { CollectionRecord, CollectionVersionRecord, StoreOps, WorkspaceRecord } from '../store/store.ts';
import { validateCollectionPolicies } from '../../config/cedar-schema.ts';
import { AdminError, conflict, invalid, notFound } from './errors.ts';
import { requireKnownEnvironment, requireVisibleProject, visibleCollection } from './lookup.ts';
import { operation, Reply, type Caller, type Operation } from './operation.ts';
import { queryText } from './query.ts';
import { hasProject, requireEnvironment, requireProject } from './scope.ts';

const E = '/api/v1/workspaces/{workspace}/environments/{environment}';
const C = `${E}/collections/{collection}`;

export function sameSpec(a: CollectionSpec, b: CollectionSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A spec in its input form (durations as strings such as "30s"): what GET answers can be PUT back unchanged. The
 * parsed form holds milliseconds, which the schema would read back as seconds.
 */
export function encodeSpec(spec: CollectionSpec) {
  const { environment: _e, ...encoded } = encodeCollection({ ...spec, environment: 'DEV' });
  return {
    ...encoded,
    target: spec.target,
    ...(spec.description !== undefined ? { description: spec.description } : {}),
  };
}

export async function toResource(tx: StoreOps, c: CollectionRecord) {
  const published = c.publishedVersion ? await tx.getCollectionVersion(c.id, c.publishedVersion) : undefined;
  return {
    ...encodeSpec(c.spec),
    id: c.id,
    environment: c.environment,
    revision: c.revision,
    ...(c.publishedVersion ? { publishedVersion: c.publishedVersion } : {}),
    unpublishedChanges: !published || !sameSpec(published.spec, c.spec),
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

export function toVersion(v: CollectionVersionRecord) {
  const { collectionId: _c, spec, ...out } = v;
  return { ...out, spec: encodeSpec(spec) };
}

function sameTarget(a: DeploymentTarget, b: DeploymentTarget): boolean {
  return a.type === b.type && (a.type === 'cloud' || (b.type === 'edge' && a.gateway === b.gateway));
}

/** Checks the spec's project and target, and that no other collection of the same gateway serves its base path. */
export async function checkSpec(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  environment: string,
  spec: CollectionSpec,
  selfId?: string,
): Promise<void> {
  requireProject(caller, spec.project);
  const projects = await tx.listProjects(workspace.id);
  if (!projects.some((p) => p.name === spec.project))
    throw invalid(
      'body.project',
      `unknown project "${spec.project}" (projects: ${projects.map((p) => p.name).join(', ')})`,
    );
  if (spec.target.type === 'edge') {
    const gateway = await tx.getGateway({ workspaceId: workspace.id, name: spec.target.gateway });
    if (!gateway || gateway.environment !== environment)
      throw invalid(
        'body.target.gateway',
        `no edge gateway "${spec.target.gateway}" in ${environment}: the edge gateway must exist in this environment (create it first)`,
      );
  }
  for (const other of await tx.listCollections(workspace.id, { environment })) {
    if (other.id === selfId) continue;
    const published = other.publishedVersion
      ? await tx.getCollectionVersion(other.id, other.publishedVersion)
      : undefined;
    for (const s of published ? [other.spec, published.spec] : [other.spec]) {
      if (sameTarget(s.target, spec.target) && s.basePath === spec.basePath && (s.host ?? '') === (spec.host ?? '')) {
        throw conflict(
          `body.basePath: "${spec.basePath}"${spec.host ? ` on host ${spec.host}` : ''} is already served by collection "${other.name}" on the same gateway`,
        );
      }
    }
  }
}

/** A new collection holding `spec` as its draft (revision 1; nothing published yet). */
export function newCollection(
  workspace: WorkspaceRecord,
  environment: string,
  name: string,
  project: string,
  spec: CollectionSpec,
  at: string,
): CollectionRecord {
  return {
    id: newId('col'),
    workspaceId: workspace.id,
    environment,
    name,
    project,
    target: spec.target,
    spec,
    revision: 1,
    createdAt: at,
    updatedAt: at,
  };
}

/** The collection with `spec` as its next draft revision (the published version is unchanged). */
export function nextDraft(c: CollectionRecord, project: string, spec: CollectionSpec, at: string): CollectionRecord {
  return { ...c, project, target: spec.target, spec, revision: c.revision + 1, updatedAt: at };
}

/** Publishes the draft (or republishes `version`) as the next version; no new version when nothing changed. */
export async function publish(
  tx: StoreOps,
  c: CollectionRecord,
  by: string,
  now: number,
  version?: number,
): Promise<{ version: CollectionVersionRecord; created: boolean }> {
  const versions = await tx.listCollectionVersions(c.id);
  const current = versions.find((v) => v.version === c.publishedVersion);
  let spec = c.spec;
  if (version !== undefined) {
    const earlier = versions.find((v) => v.version === version);
    if (!earlier) throw invalid('body.version', `collection "${c.name}" has no version ${version}`);
    spec = earlier.spec;
  } else if (current && sameSpec(current.spec, spec)) {
    return { version: current, created: false };
  }
  // Policies that do not validate against the collection's Cedar schema are never published: the version in
  // force stays (docs/policies.md).
  const problems = validateCollectionPolicies(spec);
  if (problems.length > 0)
    throw new AdminError(
      'GH_ERR_ADMIN_INVALID_BODY',
      `the policies of collection "${c.name}" do not validate; nothing was published: ${problems.slice(0, 3).join('; ')}`,
      problems.map((message) => ({ path: 'collection.policies.cedar', message })),
    );
  const record: CollectionVersionRecord = {
    collectionId: c.id,
    version: (versions[0]?.version ?? 0) + 1,
    spec,
    publishedAt: nowIso(now),
    publishedBy: by,
    ...(version !== undefined ? { restoredFrom: version } : {}),
  };
  await tx.insertCollectionVersion(record);
  const draftReset = version !== undefined && !sameSpec(spec, c.spec);
  const next: CollectionRecord = {
    ...c,
    publishedVersion: record.version,
    ...(draftReset ? { spec, revision: c.revision + 1 } : {}),
    updatedAt: nowIso(now),
  };
  if (!(await tx.updateCollection(next, c.revision))) throw conflict(`collection "${c.name}" changed meanwhile; retry`);
  return { version: record, created: true };
}

export const collectionOperations: Operation[] = [
  operation({
    id: 'listCollections',
    method: 'GET',
    path: `${E}/collections`,
    summary: "List an environment's collections within the caller's projects",
    tag: 'Collections',
    permission: 'admin:collections:read',
    query: z.object({ project: queryText('Only the collections of this project') }),
    response: z.object({ items: z.array(CollectionSchemaOut) }),
    responseForm: 'input',
    async handler({ caller, workspace, environment, query, plane }) {
      const project = query.get('project');
      const all = await plane.store.listCollections(workspace.id, { environment });
      const items = [];
      for (const c of all)
        if (hasProject(caller, c.project) && (!project || c.project === project))
          items.push(await toResource(plane.store, c));
      return { items };
    },
  }),
  operation({
    id: 'createCollection',
    method: 'POST',
    path: `${E}/collections`,
    summary: 'Create an API collection (a draft until published)',
    tag: 'Collections',
    permission: 'admin:collections:write',
    body: CollectionInputSchema,
    response: CollectionSchemaOut,
    responseForm: 'input',
    status: 201,
    async handler({ caller, workspace, environment, body, plane }) {
      return plane.store.transaction(async (tx) => {
        if (await tx.getCollection({ workspaceId: workspace.id, environment, name: body.name }))
          throw conflict(`body.name: collection "${body.name}" already exists in ${environment}`);
        await checkSpec(tx, caller, workspace, environment, body);
        const record = newCollection(workspace, environment, body.name, body.project, body, nowIso(plane.now()));
        await tx.insertCollection(record);
        return toResource(tx, record);
      });
    },
  }),
  operation({
    id: 'getCollection',
    method: 'GET',
    path: C,
    summary: 'Get a collection (its draft, and which version is published)',
    tag: 'Collections',
    permission: 'admin:collections:read',
    response: CollectionSchemaOut,
    responseForm: 'input',
    async handler({ caller, workspace, environment, params, plane }) {
      return toResource(
        plane.store,
        await visibleCollection(plane.store, caller, workspace, environment, params.collection!),
      );
    },
  }),
  operation({
    id: 'replaceCollection',
    method: 'PUT',
    path: C,
    summary: "Replace a collection's draft (gateways keep serving the published version)",
    tag: 'Collections',
    permission: 'admin:collections:write',
    body: CollectionInputSchema,
    response: CollectionSchemaOut,
    responseForm: 'input',
    async handler({ caller, workspace, environment, params, body, plane }) {
      if (body.name !== params.collection)
        throw invalid(
          'body.name',
          `must equal the collection name in the path ("${params.collection}"); collections are not renamed`,
        );
      return plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        await checkSpec(tx, caller, workspace, environment, body, c.id);
        if (sameSpec(c.spec, body)) return toResource(tx, c);
        const next = nextDraft(c, body.project, body, nowIso(plane.now()));
        if (!(await tx.updateCollection(next, c.revision)))
          throw conflict(`collection "${c.name}" changed meanwhile; retry`);
        return toResource(tx, next);
      });
    },
  }),
  operation({
    id: 'deleteCollection',
    method: 'DELETE',
    path: C,
    summary: 'Delete a collection and its versions; gateways stop serving it at once',
    tag: 'Collections',
    permission: 'admin:collections:write',
    status: 204,
    async handler({ caller, workspace, environment, params, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      await plane.store.deleteCollection(c.id);
      if (c.publishedVersion) await plane.changed(workspace.id);
      return undefined;
    },
  }),
  operation({
    id: 'publishCollection',
    method: 'POST',
    path: `${C}/publish`,
    summary: 'Publish the draft as a new version, or republish an earlier version (rollback)',
    tag: 'Collections',
    permission: 'admin:collections:publish',
    audit: { resourceType: 'collection', idParam: 'collection' },
    body: PublishInputSchema,
    response: CollectionVersionSchema,
    responseForm: 'input',
    async handler({ caller, workspace, environment, params, body, plane }) {
      const { version, created } = await plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        if (body.version !== undefined) {
          const earlier = await tx.getCollectionVersion(c.id, body.version);
          if (earlier) await checkSpec(tx, caller, workspace, environment, earlier.spec, c.id);
        }
        return publish(tx, c, caller.id, plane.now(), body.version);
      });
      if (created) await plane.changed(workspace.id);
      // 201 for a new version, 200 when the draft equals the published version (nothing to publish).
      return new Reply(created ? 201 : 200, toVersion(version));
    },
  }),
  operation({
    id: 'listCollectionVersions',
    method: 'GET',
    path: `${C}/versions`,
    summary: "List a collection's published versions, newest first",
    tag: 'Collections',
    permission: 'admin:collections:read',
    response: z.object({ items: z.array(CollectionVersionSchema) }),
    responseForm: 'input',
    async handler({ caller, workspace, environment, params, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      return { items: (await plane.store.listCollectionVersions(c.id)).map(toVersion) };
    },
  }),
  operation({
    id: 'getCollectionVersion',
    method: 'GET',
    path: `${C}/versions/{version}`,
    summary: 'Get one published version of a collection',
    tag: 'Collections',
    permission: 'admin:collections:read',
    response: CollectionVersionSchema,
    responseForm: 'input',
    async handler({ caller, workspace, environment, params, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      const n = Number(params.version);
      const v = Number.isInteger(n) && n > 0 ? await plane.store.getCollectionVersion(c.id, n) : undefined;
      if (!v) throw notFound(`version ${params.version} of collection "${c.name}"`);
      return toVersion(v);
    },
  }),
  operation({
    id: 'deployProject',
    method: 'POST',
    path: `${E}/projects/{project}/deploy`,
    summary:
      'Deploy a project: promote its published collections from the development environment to another, atomically',
    tag: 'Collections',
    permission: 'admin:deploy',
    audit: { resourceType: 'project', idParam: 'project' },
    devOnly: true,
    body: DeployInputSchema,
    response: z.object({
      environment: z.string(),
      deployed: z.array(z.object({ name: z.string(), version: z.int() })),
    }),
    async handler({ caller, workspace, environment, params, body, plane }) {
      const project = params.project!;
      requireVisibleProject(caller, project);
      if (body.to === environment) throw invalid('body.to', `must be another environment than ${environment}`);
      requireKnownEnvironment(workspace, body.to, 'body.to');
      requireEnvironment(caller, body.to, 'body.to');
      const deployed = await plane.store.transaction(async (tx) => {
        const sources = (await tx.listCollections(workspace.id, { environment })).filter(
          (c) => c.project === project && c.publishedVersion,
        );
        const wanted = body.collections ? new Set(body.collections) : undefined;
        if (wanted) {
          for (const name of wanted)
            if (!sources.some((c) => c.name === name))
              throw invalid(
                'body.collections',
                `"${name}" is not a published collection of project "${project}" in ${environment}`,
              );
        }
        const out: { name: string; version: number }[] = [];
        for (const source of sources) {
          if (wanted && !wanted.has(source.name)) continue;
          let spec = (await tx.getCollectionVersion(source.id, source.publishedVersion!))!.spec;
          let target = await tx.getCollection({ workspaceId: workspace.id, environment: body.to, name: source.name });
          // Deployment never moves a collection between projects: another project's collection of the same name
          // in the target environment is not overwritten.
          if (target && target.project !== project)
            throw conflict(
              `collection "${source.name}" already exists in ${body.to} in another project; rename one of them`,
            );
          // The destination keeps its own deployment target (an edge gateway of DEV is not reachable from TEST).
          const where = await destinationTarget(tx, workspace, body.to, spec.target, target, undefined);
          spec = { ...spec, target: where };
          await checkSpec(tx, caller, workspace, body.to, spec, target?.id);
          const at = nowIso(plane.now());
          if (!target) {
            target = newCollection(workspace, body.to, source.name, project, spec, at);
            await tx.insertCollection(target);
          } else if (!sameSpec(target.spec, spec)) {
            const next = nextDraft(target, project, spec, at);
            await tx.updateCollection(next);
            target = next;
          }
          const { version } = await publish(tx, target, caller.id, plane.now());
          out.push({ name: source.name, version: version.version });
        }
        if (!out.length)
          throw invalid('path.project', `project "${project}" has no published collections in ${environment}`);
        return out;
      });
      await plane.changed(workspace.id);
      return { environment: body.to, deployed };
    },
  }),
];
