/**
 * Admin API: a collection's OpenAPI side. Import a document (dry run: the diff only; otherwise a new draft
 * revision, never published by the import itself), export the collection as OpenAPI 3.1, and list its
 * permission catalogue for the role editor. The mapping rules live in src/config/openapi/ (docs/openapi.md).
 */
import { z } from 'zod';
import {
  MAX_OPENAPI_BYTES,
  OpenApiDocumentSchema,
  OpenApiImportInputSchema,
  OpenApiImportResultSchema,
  PermissionCatalogueSchema,
} from '../../config/openapi/api.ts';
import { permissionCatalogue } from '../../config/openapi/catalogue.ts';
import { diffEndpoints, permissionNames } from '../../config/openapi/diff.ts';
import { exportOpenApi } from '../../config/openapi/export.ts';
import { importOpenApi } from '../../config/openapi/import.ts';
import { CollectionInputSchema, type CollectionSpec } from '../../config/resources.ts';
import { nowIso } from '../ids.ts';
import { checkSpec, newCollection, nextDraft, sameSpec } from './collection-routes.ts';
import { AdminError, conflict, fromZod, invalid } from './errors.ts';
import { visibleCollection } from './lookup.ts';
import { operation, type Operation } from './operation.ts';
import { queryInt } from './query.ts';
import { requireProject } from './scope.ts';

const C = '/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}';

export const openApiOperations: Operation[] = [
  operation({
    id: 'importCollectionOpenApi',
    method: 'POST',
    path: `${C}/openapi`,
    summary:
      "Import an OpenAPI document as the collection's endpoints: the diff, and (unless dryRun) a new draft revision",
    tag: 'Collections',
    permission: 'admin:collections:write',
    body: OpenApiImportInputSchema,
    response: OpenApiImportResultSchema,
    maxBody: MAX_OPENAPI_BYTES,
    async handler({ caller, workspace, environment, params, body, plane }) {
      const name = params.collection!;
      const existing = await plane.store.getCollection({ workspaceId: workspace.id, environment, name });
      if (existing) await visibleCollection(plane.store, caller, workspace, environment, name);
      else if (!body.create)
        throw invalid(
          'body.create',
          `collection "${name}" does not exist in ${environment}: give its project and upstream in "create" to create it from the document`,
        );
      else requireProject(caller, body.create.project);
      const outcome = await importOpenApi(body.spec, {
        publicEndpoints: existing ? existing.spec.publicEndpoints : body.create?.publicEndpoints,
        validateRequests: existing ? existing.spec.validateRequests : body.create?.validateRequests,
        mcp: existing ? existing.spec.mcp?.enabled === true : body.create?.mcp?.enabled === true,
      });
      if (!outcome.ok)
        throw new AdminError(
          'GH_ERR_ADMIN_OPENAPI_INVALID',
          `the OpenAPI document has ${outcome.problems.length} problem(s); nothing was changed. First: ${describe(outcome.problems[0]!)}`,
          outcome.problems.map((p) => ({ path: 'body.spec', ...p })),
        );
      const imported = outcome.spec;

      return plane.store.transaction(async (tx) => {
        const current = await tx.getCollection({ workspaceId: workspace.id, environment, name });
        let spec: CollectionSpec;
        if (current) {
          // The stored spec is in its parsed form (durations in ms): only the imported parts go through the schema.
          const endpoints = CollectionInputSchema.shape.endpoints.safeParse(imported.endpoints);
          if (!endpoints.success) throw fromZod('collection.endpoints', endpoints.error);
          const schemas = CollectionInputSchema.shape.schemas.safeParse(imported.schemas);
          if (!schemas.success) throw fromZod('collection.schemas', schemas.error);
          const { schemas: _old, ...rest } = current.spec;
          spec = { ...rest, ...(schemas.data ? { schemas: schemas.data } : {}), endpoints: endpoints.data };
        } else {
          const create = body.create!;
          const basePath = create.basePath ?? imported.serverBasePath ?? `/${name}`;
          const parsed = CollectionInputSchema.safeParse({
            name,
            project: create.project,
            upstream: create.upstream,
            basePath,
            ...(create.host !== undefined ? { host: create.host } : {}),
            // The document's paths live under its server path: forwarded as they are when the base path is it.
            ...(basePath === imported.serverBasePath && create.basePath === undefined ? { stripBasePath: false } : {}),
            ...(create.publicEndpoints !== undefined ? { publicEndpoints: create.publicEndpoints } : {}),
            ...(create.validateRequests !== undefined ? { validateRequests: create.validateRequests } : {}),
            ...(create.mcp !== undefined ? { mcp: create.mcp } : {}),
            ...(imported.schemas ? { schemas: imported.schemas } : {}),
            endpoints: imported.endpoints,
          });
          if (!parsed.success) throw fromZod('collection', parsed.error);
          spec = parsed.data;
        }

        const roles = await tx.listRoles(workspace.id);
        const elsewhere = new Set<string>();
        for (const other of await tx.listCollections(workspace.id))
          if (other.id !== current?.id) for (const p of permissionNames(other.spec.endpoints)) elsewhere.add(p);
        const diff = diffEndpoints(name, current?.spec.endpoints ?? [], spec.endpoints, roles, elsewhere);
        const result = {
          dryRun: body.dryRun,
          applied: false,
          created: false,
          ...(current ? { revision: current.revision } : {}),
          version: imported.version,
          ...(imported.serverBasePath !== undefined ? { serverBasePath: imported.serverBasePath } : {}),
          diff,
          overlaps: imported.overlaps,
          warnings: imported.warnings,
        };
        if (body.dryRun) return result;
        if (current && sameSpec(current.spec, spec)) return result;
        await checkSpec(tx, caller, workspace, environment, spec, current?.id);
        const at = nowIso(plane.now());
        if (!current) {
          const record = newCollection(workspace, environment, name, spec.project, spec, at);
          await tx.insertCollection(record);
          return { ...result, applied: true, created: true, revision: record.revision };
        }
        const next = nextDraft(current, spec.project, spec, at);
        if (!(await tx.updateCollection(next, current.revision)))
          throw conflict(`collection "${name}" changed meanwhile; retry`);
        return { ...result, applied: true, revision: next.revision };
      });
    },
  }),
  operation({
    id: 'exportCollectionOpenApi',
    method: 'GET',
    path: `${C}/openapi`,
    summary: "Export the collection's draft (or ?version=N, a published version) as an OpenAPI 3.1 document",
    tag: 'Collections',
    permission: 'admin:collections:read',
    query: z.object({
      version: queryInt(Number.MAX_SAFE_INTEGER, 'Export this published version instead of the draft'),
    }),
    response: OpenApiDocumentSchema,
    async handler({ caller, workspace, environment, params, query, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      const wanted = query.get('version');
      if (wanted === null) return exportOpenApi({ ...c.spec, revision: c.revision });
      const n = Number(wanted);
      const v = Number.isInteger(n) && n > 0 ? await plane.store.getCollectionVersion(c.id, n) : undefined;
      if (!v) throw invalid('query.version', `collection "${c.name}" has no published version ${wanted}`);
      return exportOpenApi({ ...v.spec, revision: v.version });
    },
  }),
  operation({
    id: 'getCollectionPermissions',
    method: 'GET',
    path: `${C}/permissions`,
    summary: "The collection's permission catalogue: every permission its draft's endpoints use, with their operations",
    tag: 'Collections',
    permission: 'admin:collections:read',
    response: PermissionCatalogueSchema,
    async handler({ caller, workspace, environment, params, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      return permissionCatalogue(c.spec.endpoints);
    },
  }),
];

function describe(p: { pointer: string; message: string; line?: number; column?: number }): string {
  return `${p.pointer || '(root)'}${p.line !== undefined ? ` (line ${p.line}, column ${p.column})` : ''}: ${p.message}`;
}
