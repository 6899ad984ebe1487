import { CollectionInputSchema, type CollectionResource } from '../config/resources.ts';
import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { printJson, requireFlags } from './admin-output.ts';
import { loadFile } from './collection-file.ts';
import { COLLECTION } from './collection-list.ts';
import { parse, UsageError } from './command.ts';

const NAME = 'collection create';

export const collectionCreate = adminCommand({
  usage: `--env ENV -f FILE ${CONNECTION_USAGE}\n\nFILE holds one collection: name, basePath, upstream, project, endpoints, … (docs/cli.md); "-" reads stdin.
To create, update and publish many at once, use \`gatehouse collection apply\`.\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, {
      ...CONNECTION_OPTIONS,
      env: { type: 'string' },
      file: { type: 'string', short: 'f' },
    });
    requireFlags(NAME, values, ['env']);
    if (!values.file) throw new UsageError(`${NAME}: -f FILE is required`);
    const { raw } = await loadFile(values.file, CollectionInputSchema);
    const api = connect(NAME, values);
    const collection = await api.request<CollectionResource>(
      'POST',
      await api.workspacePath('environments', values.env!, 'collections'),
      raw,
      COLLECTION,
    );
    if (values.json) printJson(collection);
    else
      console.log(
        `Created collection "${collection.name}" (${collection.id}) in ${collection.environment} of workspace ${await api.workspace()}: a draft until published.`,
      );
    return 0;
  },
});
