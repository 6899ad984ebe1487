/**
 * `gatehouse collection apply -f FILE`: make one environment's collections match a declarative file (decK-style).
 * Missing collections are created, changed drafts replaced, drafts that differ from their published version
 * published (when `publish`), and collections the file does not list deleted only when `prune: true`. Comparing
 * what the admin API returns with what the file says, field by field, makes a second apply of the same file a no-op:
 * no request that writes, no new version.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConfigError } from '../config/load.ts';
import {
  ApplyFileSchema,
  CollectionInputSchema,
  type ApplyFile,
  type CollectionResource,
  type CollectionVersion,
} from '../config/resources.ts';
import {
  adminCommand,
  type AdminClient,
  ControlPlaneError,
  connect,
  jsonOutput,
  type Expected,
  LIST,
} from './admin-client.ts';
import { printJson, progress, type Progress } from './output.ts';
import { loadFile } from './collection-file.ts';
import { UsageError } from './command.ts';

const NAME = 'collection apply';

/** What a collection answer must hold. */
const COLLECTION: Expected = {
  id: 'string',
  name: 'string',
  environment: 'string',
  revision: 'number',
  unpublishedChanges: 'boolean',
};

/** The fields a collection is edited with; the rest of a returned collection (id, revision, …) is the server's. */
const INPUT_KEYS = Object.keys(CollectionInputSchema.shape);

function inputOf(value: object): Record<string, unknown> {
  const v = value as Record<string, unknown>;
  return Object.fromEntries(INPUT_KEYS.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
}

/**
 * Whether a collection as the admin API returns it (input form: durations as strings) equals one parsed from the
 * file (parsed form: durations in ms). The server's is parsed the same way first; key order does not matter.
 */
function sameInput(server: object, parsed: object): boolean {
  const normalized = CollectionInputSchema.safeParse(inputOf(server));
  return normalized.success && isDeepStrictEqual(inputOf(normalized.data), inputOf(parsed));
}

export interface ApplyResult {
  workspace: string;
  environment: string;
  dryRun: boolean;
  created: string[];
  updated: string[];
  published: { name: string; version: number }[];
  deleted: string[];
  unchanged: string[];
  /** In the environment but not in the file, and left alone because `prune` is false. */
  kept: string[];
}

type Verb = 'created' | 'updated' | 'published' | 'deleted' | 'unchanged' | 'kept';

/** One line of the summary: `created billing`, `published billing v2`; a dry run says what it would do. */
interface Line {
  verb: Verb;
  text: string;
}

const PLANNED: Record<Verb, string> = {
  created: 'would create',
  updated: 'would update',
  published: 'would publish',
  deleted: 'would delete',
  unchanged: 'unchanged',
  kept: 'kept',
};

function render(line: Line, dryRun = false): string {
  return `${dryRun ? PLANNED[line.verb] : line.verb} ${line.text}`;
}

function checkUniqueNames(file: string, spec: ApplyFile): void {
  const seen = new Map<string, number>();
  spec.collections.forEach((c, i) => {
    const first = seen.get(c.name);
    if (first !== undefined)
      throw new ConfigError(
        `${file}: collections[${i}].name: "${c.name}" is listed twice (also collections[${first}])`,
      );
    seen.set(c.name, i);
  });
}

export const collectionApply = adminCommand({
  name: NAME,
  args: `-f FILE [--dry-run]`,
  help: `FILE (YAML or JSON; "-" reads stdin): environment, collections, publish (default true), prune (default false).
--dry-run prints the plan without changing anything.`,
  options: {
    file: { type: 'string', short: 'f' },
    'dry-run': { type: 'boolean' },
  },
  async run(values) {
    const json = jsonOutput(NAME, values);
    if (!values.file) throw new UsageError(`${NAME}: -f FILE is required`);
    const file = values.file;
    const { raw, value: spec } = await loadFile(file, ApplyFileSchema);
    checkUniqueNames(file, spec);
    const api = connect(NAME, values);
    const dryRun = values['dry-run'] ?? false;
    const result: ApplyResult = {
      workspace: await api.workspace(),
      environment: spec.environment,
      dryRun,
      created: [],
      updated: [],
      published: [],
      deleted: [],
      unchanged: [],
      kept: [],
    };
    const lines: Line[] = [];
    // On a terminal, a progress line on stderr: one step per collection, and per pruned one.
    const bar = progress(spec.collections.length);
    try {
      await apply(api, spec, (raw as { collections?: unknown[] }).collections ?? [], result, lines, bar);
    } catch (error) {
      bar.done();
      if (!(error instanceof UsageError || error instanceof ControlPlaneError) || dryRun || lines.length === 0)
        throw error;
      const done = `\nalready applied before this error: ${lines.map((l) => render(l)).join('; ')}`;
      throw error instanceof UsageError
        ? new UsageError(error.message + done)
        : new ControlPlaneError(error.message + done);
    }
    bar.done();
    if (json) {
      printJson(result);
      return 0;
    }
    const counts = `${result.created.length} created, ${result.updated.length} updated, ${result.published.length} published, ${result.deleted.length} deleted, ${result.unchanged.length} unchanged`;
    const changes = result.created.length + result.updated.length + result.published.length + result.deleted.length;
    console.log(
      [
        `${dryRun ? 'Dry run of' : 'Applying'} ${file} to ${spec.environment} of workspace ${result.workspace}${dryRun ? ': nothing is written' : ''}`,
        ...lines.map((l) => `  ${render(l, dryRun)}`),
        `Summary${dryRun ? ' (dry run)' : ''}: ${counts}${changes === 0 ? ': nothing to change' : ''}`,
      ].join('\n'),
    );
    return 0;
  },
});

async function apply(
  api: AdminClient,
  spec: ApplyFile,
  bodies: unknown[],
  result: ApplyResult,
  lines: Line[],
  bar: Progress,
): Promise<void> {
  const base = await api.workspacePath('environments', spec.environment, 'collections');
  const { items } = await api.request<{ items: CollectionResource[] }>('GET', base, undefined, LIST);
  const current = new Map(items.map((c) => [c.name, c]));

  for (const [i, desired] of spec.collections.entries()) {
    const name = desired.name;
    bar.step(name);
    const path = `${base}/${encodeURIComponent(name)}`;
    const step = <T>(what: string, request: () => Promise<T>) => withContext(`${what} collection "${name}"`, request);
    const existing = current.get(name);
    let changed = true;
    let after: CollectionResource | undefined;
    if (!existing) {
      if (!result.dryRun)
        after = await step('creating', () => api.request<CollectionResource>('POST', base, bodies[i], COLLECTION));
      result.created.push(name);
      lines.push({ verb: 'created', text: name });
    } else if (!sameInput(existing, desired)) {
      after = result.dryRun
        ? undefined
        : await step('updating', () => api.request<CollectionResource>('PUT', path, bodies[i], COLLECTION));
      // The server keeps the revision when the draft did not really change (e.g. a default it fills in differently).
      if (after && after.revision === existing.revision) changed = false;
      else {
        result.updated.push(name);
        lines.push({ verb: 'updated', text: name });
      }
    } else {
      after = existing;
      changed = false;
    }

    if (spec.publish) {
      const version = result.dryRun
        ? await plannedVersion(api, path, existing, desired, changed)
        : await publishDraft(api, path, after!, step);
      if (version !== undefined) {
        result.published.push({ name, version });
        lines.push({ verb: 'published', text: `${name} v${version}` });
        changed = true;
      }
    }
    if (!changed) {
      result.unchanged.push(name);
      lines.push({ verb: 'unchanged', text: name });
    }
  }

  const listed = new Set(spec.collections.map((c) => c.name));
  for (const c of items) {
    if (listed.has(c.name)) continue;
    if (!spec.prune) {
      result.kept.push(c.name);
      lines.push({ verb: 'kept', text: `${c.name} (not in the file; set prune: true to delete it)` });
      continue;
    }
    if (!result.dryRun)
      await withContext(`deleting collection "${c.name}"`, () =>
        api.request('DELETE', `${base}/${encodeURIComponent(c.name)}`),
      );
    result.deleted.push(c.name);
    lines.push({ verb: 'deleted', text: c.name });
  }
}

/** Publishes the draft if it differs from the published version; the new version's number, or undefined. */
async function publishDraft(
  api: AdminClient,
  path: string,
  collection: CollectionResource,
  step: <T>(what: string, request: () => Promise<T>) => Promise<T>,
): Promise<number | undefined> {
  if (!collection.unpublishedChanges) return undefined;
  const version = await step('publishing', () =>
    api.request<CollectionVersion>('POST', `${path}/publish`, {}, { version: 'number' }),
  );
  return version.version === collection.publishedVersion ? undefined : version.version;
}

/** The version a publish would create (dry run), or undefined when the draft would equal the published version. */
async function plannedVersion(
  api: AdminClient,
  path: string,
  existing: CollectionResource | undefined,
  desired: object,
  draftChanges: boolean,
): Promise<number | undefined> {
  if (!existing) return 1;
  if (!draftChanges && !existing.unpublishedChanges) return undefined;
  const { items } = await withContext(`reading the versions of collection "${existing.name}"`, () =>
    api.request<{ items: CollectionVersion[] }>('GET', `${path}/versions`, undefined, LIST),
  );
  const published = items.find((v) => v.version === existing.publishedVersion);
  if (published && sameInput(published.spec, desired)) return undefined;
  return Math.max(0, ...items.map((v) => v.version)) + 1;
}

/** Names the step in an admin API refusal: `updating collection "orders": body.basePath: …`. */
async function withContext<T>(what: string, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${what}: ${error.message}`);
    if (error instanceof ControlPlaneError) throw new ControlPlaneError(`${what}: ${error.message}`);
    throw error;
  }
}
