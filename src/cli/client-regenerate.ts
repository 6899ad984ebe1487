import { RegenerateInputSchema } from '../config/resources.ts';
import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { checkBody, printJson, tokenLines } from './admin-output.ts';
import { CLIENT_WITH_TOKEN, type ClientWithToken } from './client-create.ts';
import { parse, UsageError } from './command.ts';

const NAME = 'client regenerate';

export const clientRegenerate = adminCommand({
  usage: `ID [--grace-period DURATION] ${CONNECTION_USAGE}\n\n--grace-period (e.g. 30m, 1h, 7d; at most 30 days) keeps the old token working that long.\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values, positionals } = parse(
      NAME,
      args,
      { ...CONNECTION_OPTIONS, 'grace-period': { type: 'string' } },
      true,
    );
    if (positionals.length !== 1)
      throw new UsageError(
        `${NAME}: give exactly one client id (see \`gatehouse client list\`), got ${positionals.length}`,
      );
    const id = positionals[0]!;
    const body = checkBody(
      NAME,
      RegenerateInputSchema,
      values['grace-period'] === undefined ? {} : { gracePeriod: values['grace-period'] },
      { gracePeriod: 'grace-period' },
    );
    const api = connect(NAME, values);
    const answer = await api.request<ClientWithToken>(
      'POST',
      await api.workspacePath('clients', id, 'regenerate'),
      body,
      CLIENT_WITH_TOKEN,
    );
    if (values.json) {
      printJson(answer);
      return 0;
    }
    const { client, token } = answer;
    const until = client.keys
      .map((k) => k.expiresAt)
      .filter((e) => e !== undefined)
      .sort()
      .at(-1);
    const old = until ? `The previous token keeps working until ${until}.` : 'The previous token no longer works.';
    console.log(
      [`Regenerated the token of API client "${client.name}" (${client.id}). ${old}`, ...tokenLines(token)].join('\n'),
    );
    return 0;
  },
});
