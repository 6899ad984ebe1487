/**
 * A declarative config file's collection may name an OpenAPI document instead of listing endpoints:
 * `openapi: ./billing.yaml` (relative to the config file). The document is bundled and imported (the same rules
 * as the admin API's import: docs/openapi.md) into `endpoints` (and `schemas`) before the file is validated.
 */
import { resolve } from 'node:path';
import { bundleSpecFile } from './bundle.ts';
import { importOpenApi } from './import.ts';
import type { SpecProblem } from './source.ts';

/** Replaces each collection's `openapi` by the endpoints it imports to; returns every problem, `file:line:col` first. */
export async function expandOpenApiCollections(data: unknown, baseDir: string): Promise<string[]> {
  const problems: string[] = [];
  const collections = (data as { collections?: unknown } | null)?.collections;
  if (!Array.isArray(collections)) return problems;
  for (const [i, c] of collections.entries()) {
    if (c === null || typeof c !== 'object' || !('openapi' in c)) continue;
    const collection = c as Record<string, unknown>;
    const where = `collections[${i}].openapi`;
    if (typeof collection.openapi !== 'string') {
      problems.push(`${where}: must be the path of an OpenAPI document`);
      continue;
    }
    if (collection.endpoints !== undefined) {
      problems.push(`${where}: give either openapi or endpoints, not both`);
      continue;
    }
    const file = resolve(baseDir, collection.openapi);
    const bundled = await bundleSpecFile(file);
    const show = (p: SpecProblem) =>
      `${where}: ${file}${p.line !== undefined ? `:${p.line}:${p.column}` : ''} ${p.pointer || '(root)'}: ${p.message}`;
    if (!bundled.ok) {
      problems.push(...bundled.problems.map(show));
      continue;
    }
    const outcome = await importOpenApi(bundled.text ?? bundled.document, {
      publicEndpoints: collection.publicEndpoints === true,
      validateRequests: collection.validateRequests === true,
      mcp: isMcpEnabled(collection.mcp),
    });
    if (!outcome.ok) {
      problems.push(...outcome.problems.map(show));
      continue;
    }
    delete collection.openapi;
    collection.endpoints = outcome.spec.endpoints;
    if (outcome.spec.schemas) collection.schemas = outcome.spec.schemas;
  }
  return problems;
}

/** Whether a collection's raw `mcp` setting (before validation) turns the MCP server on. */
function isMcpEnabled(mcp: unknown): boolean {
  return mcp !== null && typeof mcp === 'object' && (mcp as { enabled?: unknown }).enabled !== false;
}
