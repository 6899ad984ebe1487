import type { CollectionResource } from '../config/resources.ts';
import {
  adminCommand,
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  connect,
  type Expected,
  LIST,
} from './admin-client.ts';
import { printJson, requireFlags, table } from './admin-output.ts';
import { parse } from './command.ts';

const NAME = 'collection list';

/** What a collection answer must hold. */
export const COLLECTION: Expected = {
  id: 'string',
  name: 'string',
  environment: 'string',
  revision: 'number',
  unpublishedChanges: 'boolean',
};

/** `draft` (never published), `v3`, or `v3 + draft changes`. */
export function publication(c: CollectionResource): string {
  if (c.publishedVersion === undefined) return 'draft';
  return c.unpublishedChanges ? `v${c.publishedVersion} + draft changes` : `v${c.publishedVersion}`;
}

export const collectionList = adminCommand({
  usage: `--env ENV [--project NAME] ${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, {
      ...CONNECTION_OPTIONS,
      env: { type: 'string' },
      project: { type: 'string' },
    });
    requireFlags(NAME, values, ['env']);
    const api = connect(NAME, values);
    const query = values.project ? `?project=${encodeURIComponent(values.project)}` : '';
    const { items } = await api.request<{ items: CollectionResource[] }>(
      'GET',
      `${await api.workspacePath('environments', values.env!, 'collections')}${query}`,
      undefined,
      LIST,
    );
    if (values.json) {
      printJson(items);
      return 0;
    }
    if (items.length === 0) {
      console.log(`No collections in ${values.env} of workspace ${await api.workspace()} (within your projects).`);
      return 0;
    }
    const rows = items.map((c) => [
      c.name,
      c.project,
      `${c.host ?? ''}${c.basePath}`,
      c.upstream.url,
      String(c.endpoints.length),
      publication(c),
    ]);
    console.log(table(['name', 'project', 'base path', 'upstream', 'endpoints', 'published'], rows));
    return 0;
  },
});
