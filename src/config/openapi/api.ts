/**
 * The admin API's OpenAPI resources: the import request and its answer (the diff), and the permission catalogue.
 * One schema each; the admin API's own OpenAPI document and the CLI read them.
 */
import { z } from 'zod';
import {
  BasePathSchema,
  HostSchema,
  HttpMethodSchema,
  HttpUrlSchema,
  McpSettingsSchema,
  NameSchema,
} from '../schema.ts';

/** Largest OpenAPI document an import takes (the GitHub REST description is ~13 MB). */
export const MAX_OPENAPI_BYTES = 64 * 1024 * 1024;

export const OpenApiImportInputSchema = z.strictObject({
  /** The OpenAPI document (Swagger 2.0, OpenAPI 3.0 or 3.1): its text (JSON or YAML), or the parsed object. */
  spec: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
  /** Only compute and return the diff; change nothing. */
  dryRun: z.boolean().default(false),
  /**
   * Settings of the collection when it does not exist yet (the import then creates it as a draft). `basePath`
   * defaults to the path of the document's servers (and the base path is then forwarded, as the document
   * describes its paths under it), else `/<collection>`.
   */
  create: z
    .strictObject({
      project: NameSchema,
      /** The upstream URL (its connection settings can be edited on the collection afterwards). */
      upstream: HttpUrlSchema,
      basePath: BasePathSchema.optional(),
      host: HostSchema.optional(),
      publicEndpoints: z.boolean().optional(),
      validateRequests: z.boolean().optional(),
      /** Serve the new collection as an MCP server (docs/mcp.md): the import keeps every operation's request schemas. */
      mcp: McpSettingsSchema.optional(),
    })
    .optional(),
});
export type OpenApiImportInput = z.output<typeof OpenApiImportInputSchema>;

export const SpecProblemSchema = z.strictObject({
  pointer: z.string(),
  message: z.string(),
  line: z.int().positive().optional(),
  column: z.int().positive().optional(),
});

const OperationRefSchema = z.strictObject({
  method: HttpMethodSchema,
  path: z.string(),
  operationId: z.string().optional(),
  permission: z.string(),
});

export const EndpointDiffSchema = z.strictObject({
  operations: z.strictObject({
    added: z.array(OperationRefSchema),
    removed: z.array(OperationRefSchema),
    changed: z.array(OperationRefSchema.extend({ fields: z.array(z.string()) })),
  }),
  permissions: z.strictObject({ added: z.array(z.string()), removed: z.array(z.string()) }),
  /** Roles of the workspace naming a permission, or granting an endpoint, that the import removes. */
  roles: z.array(
    z.strictObject({
      role: z.string(),
      permissions: z.array(z.string()),
      endpoints: z.array(z.strictObject({ method: HttpMethodSchema, path: z.string() })),
    }),
  ),
  empty: z.boolean(),
});

export const OpenApiImportResultSchema = z.strictObject({
  dryRun: z.boolean(),
  /** A new draft revision was written (never on a dry run, nor when nothing changed). */
  applied: z.boolean(),
  /** The collection did not exist and was created (as a draft). */
  created: z.boolean(),
  /** The draft's revision after the import. */
  revision: z.int().positive().optional(),
  /** The document's version as uploaded. */
  version: z.enum(['2.0', '3.0', '3.1']),
  serverBasePath: z.string().optional(),
  diff: EndpointDiffSchema,
  /** Templates of one method that match some of the same paths; `wins` is the one the router picks. */
  overlaps: z.array(z.strictObject({ method: z.string(), wins: z.string(), other: z.string() })),
  /** What was imported differently from what the document asked (each with its place in the document). */
  warnings: z.array(SpecProblemSchema),
});
export type OpenApiImportResult = z.output<typeof OpenApiImportResultSchema>;

export const PermissionCatalogueSchema = z.strictObject({
  items: z.array(
    z.strictObject({
      permission: z.string(),
      operations: z.array(
        z.strictObject({
          method: HttpMethodSchema,
          path: z.string(),
          operationId: z.string().optional(),
          summary: z.string().optional(),
          /** The permission is one of a set that must be granted together with the others listed. */
          together: z.array(z.string()).optional(),
          public: z.boolean().optional(),
        }),
      ),
    }),
  ),
});
export type PermissionCatalogue = z.output<typeof PermissionCatalogueSchema>;

/** An OpenAPI 3.1 document (the export). */
export const OpenApiDocumentSchema = z.record(z.string(), z.unknown());
