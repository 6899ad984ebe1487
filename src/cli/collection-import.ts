/**
 * `gatehouse collection import --spec FILE`: import an OpenAPI document as a collection's endpoints through the
 * admin API. A multi-file document is bundled here first (relative `$ref`s), so the control plane gets one
 * document. `--dry-run` prints the diff and changes nothing; otherwise the import becomes the next draft revision
 * (publish it with the admin API or `collection apply`). Problems print as FILE:LINE:COLUMN pointer: message.
 */
import { basename, extname } from 'node:path';
import type { OpenApiImportResult } from '../config/openapi/api.ts';
import { bundleSpecFile } from '../config/openapi/bundle.ts';
import type { SpecProblem } from '../config/openapi/source.ts';
import { NAME_PATTERN } from '../config/schema.ts';
import { adminCommand, AdminRequestError, connect, jsonOutput } from './admin-client.ts';
import { printJson, progress } from './output.ts';
import { requireFlags, UsageError } from './command.ts';

const NAME = 'collection import';

export const collectionImport = adminCommand({
  name: NAME,
  args: `--env ENV --spec FILE [--collection NAME] [--dry-run] [--project NAME --upstream URL [--base-path PATH]]`,
  help: `FILE is an OpenAPI 3.1, 3.0 or Swagger 2.0 document (JSON or YAML); files it references by relative $ref are
bundled in. NAME defaults to the file's name. --project and --upstream create the collection when it does not
exist yet. The mapping rules are in docs/openapi.md.`,
  options: {
    env: { type: 'string' },
    spec: { type: 'string' },
    collection: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    project: { type: 'string' },
    upstream: { type: 'string' },
    'base-path': { type: 'string' },
  },
  async run(values) {
    requireFlags(NAME, values, ['env', 'spec']);
    const file = values.spec!;
    const collection = values.collection ?? basename(file, extname(file));
    if (!NAME_PATTERN.test(collection))
      throw new UsageError(`${NAME}: "${collection}" is not a collection name: give one with --collection NAME`);
    // A large document takes a while to bundle and for the control plane to parse: say what is happening.
    const shown = progress(2);
    shown.step(`reading ${file} and the files it references`);
    const bundled = await bundleSpecFile(file);
    if (!bundled.ok) {
      shown.done();
      throw new UsageError(formatProblems(file, bundled.problems));
    }
    const api = connect(NAME, values);
    const create =
      values.project !== undefined || values.upstream !== undefined
        ? {
            project: values.project,
            upstream: values.upstream,
            ...(values['base-path'] !== undefined ? { basePath: values['base-path'] } : {}),
          }
        : undefined;
    let result: OpenApiImportResult;
    const size = Buffer.byteLength(bundled.text ?? JSON.stringify(bundled.document));
    shown.step(`${values['dry-run'] ? 'checking' : 'importing'} ${(size / 1024).toFixed(0)} KB on the control plane`);
    try {
      result = await api.request<OpenApiImportResult>(
        'POST',
        await api.workspacePath('environments', values.env!, 'collections', collection, 'openapi'),
        { spec: bundled.text ?? bundled.document, dryRun: values['dry-run'], ...(create ? { create } : {}) },
        { diff: 'object', applied: 'boolean' },
      );
    } catch (error) {
      if (error instanceof AdminRequestError && error.code === 'GH_ERR_ADMIN_OPENAPI_INVALID')
        throw new UsageError(formatProblems(file, error.errors as unknown as SpecProblem[]));
      throw asFlags(error, collection, values.env!);
    } finally {
      shown.done();
    }
    if (jsonOutput(NAME, values)) printJson(result);
    else console.log(summary(collection, values.env!, result).join('\n'));
    return 0;
  },
});

/** The API body's `create` fields, as this command's flags. */
const CREATE_FLAGS: Readonly<Record<string, string>> = {
  'body.create.project': '--project',
  'body.create.upstream': '--upstream',
  'body.create.basePath': '--base-path',
};

/**
 * A refusal of the import's `create` (the collection does not exist and was not given its project and upstream,
 * or one of them is bad) in this command's words: its flags, not the admin API body's fields.
 */
function asFlags(error: unknown, collection: string, env: string): unknown {
  if (!(error instanceof AdminRequestError) || error.code !== 'GH_ERR_ADMIN_INVALID_BODY') return error;
  const problems = error.errors.filter((e) => e.path === 'body.create' || e.path in CREATE_FLAGS);
  if (problems.length === 0 || problems.length !== error.errors.length) return error;
  const lines = problems.map((p) =>
    p.path === 'body.create'
      ? `${NAME}: collection "${collection}" does not exist in ${env}: give --project NAME and --upstream URL to create it from the document`
      : `${NAME}: ${CREATE_FLAGS[p.path]}: ${p.message}`,
  );
  return new UsageError(lines.join('\n'));
}

/** `FILE:LINE:COLUMN /pointer: message`, one line per problem (line and column when the text was sent). */
export function formatProblems(file: string, problems: readonly SpecProblem[]): string {
  const lines = problems.map(
    (p) => `  ${file}${p.line !== undefined ? `:${p.line}:${p.column}` : ''} ${p.pointer || '(root)'}: ${p.message}`,
  );
  return [`${file}: ${problems.length} problem(s); nothing was imported`, ...lines].join('\n');
}

function summary(collection: string, env: string, r: OpenApiImportResult): string[] {
  const out: string[] = [];
  const d = r.diff;
  const head = r.dryRun
    ? `Dry run: importing into "${collection}" in ${env} would change:`
    : r.applied
      ? `${r.created ? 'Created' : 'Updated'} collection "${collection}" in ${env}: draft revision ${r.revision} (publish it to serve it).`
      : `Collection "${collection}" in ${env} already matches the document: nothing changed.`;
  out.push(head);
  const op = (o: { method: string; path: string; permission: string }) => `${o.method} ${o.path} (${o.permission})`;
  for (const o of d.operations.added) out.push(`  + ${op(o)}`);
  for (const o of d.operations.removed) out.push(`  - ${op(o)}`);
  for (const o of d.operations.changed) out.push(`  ~ ${op(o)}: ${o.fields.join(', ')}`);
  if (d.permissions.added.length) out.push(`  permissions added: ${d.permissions.added.join(', ')}`);
  if (d.permissions.removed.length) out.push(`  permissions removed: ${d.permissions.removed.join(', ')}`);
  for (const role of d.roles)
    out.push(
      `  role "${role.role}" loses ${[...role.permissions, ...role.endpoints.map((e) => `${e.method} ${e.path}`)].join(', ')}`,
    );
  if (d.empty && r.dryRun) out.push('  nothing');
  for (const o of r.overlaps) out.push(`  overlap: ${o.method} ${o.wins} wins over ${o.other}`);
  for (const w of r.warnings) out.push(`  warning: ${w.pointer}${w.line ? ` (line ${w.line})` : ''}: ${w.message}`);
  return out;
}
