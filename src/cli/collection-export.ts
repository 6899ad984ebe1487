/** `gatehouse collection export`: a collection's endpoints and permissions as an OpenAPI 3.1 document. */
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { adminCommand, connect } from './admin-client.ts';
import { requireFlags } from './command.ts';

const NAME = 'collection export';

export const collectionExport = adminCommand({
  name: NAME,
  args: `--env ENV --collection NAME [--version N] [--format yaml|json] [--out FILE]`,
  help: `Writes the draft (or published version N) as OpenAPI 3.1 with x-gatehouse-permission on each operation;
\`gatehouse collection import\` of that document changes nothing.`,
  options: {
    env: { type: 'string' },
    collection: { type: 'string' },
    version: { type: 'string' },
    format: { type: 'string', default: 'yaml' },
    out: { type: 'string' },
  },
  async run(values) {
    requireFlags(NAME, values, ['env', 'collection']);
    const api = connect(NAME, values);
    const path = await api.workspacePath('environments', values.env!, 'collections', values.collection!, 'openapi');
    const document = await api.request<Record<string, unknown>>(
      'GET',
      values.version ? `${path}?version=${encodeURIComponent(values.version)}` : path,
      undefined,
      { openapi: 'string', paths: 'object' },
    );
    const text =
      values.format === 'json' || values.json ? `${JSON.stringify(document, null, 2)}\n` : stringify(document);
    if (values.out) await writeFile(values.out, text);
    else process.stdout.write(text);
    return 0;
  },
});
