import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { printJson } from './admin-output.ts';
import { parse, UsageError } from './command.ts';

const NAME = 'client delete';

export const clientDelete = adminCommand({
  usage: `ID ${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values, positionals } = parse(NAME, args, CONNECTION_OPTIONS, true);
    if (positionals.length !== 1)
      throw new UsageError(
        `${NAME}: give exactly one client id (see \`gatehouse client list\`), got ${positionals.length}`,
      );
    const id = positionals[0]!;
    const api = connect(NAME, values);
    await api.request('DELETE', await api.workspacePath('clients', id));
    if (values.json) printJson({ deleted: id });
    else console.log(`Deleted API client ${id}: its tokens no longer work.`);
    return 0;
  },
});
