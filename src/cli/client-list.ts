import type { ClientResource } from '../config/resources.ts';
import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect, LIST } from './admin-client.ts';
import { printJson, table } from './admin-output.ts';
import { parse } from './command.ts';

const NAME = 'client list';

/** `active`, `disabled`, or `expired` once its expiry has passed (the admin API refuses it then). */
function status(c: ClientResource, now: number): string {
  if (c.status === 'active' && c.expiresAt && Date.parse(c.expiresAt) <= now) return 'expired';
  return c.kind === 'legacy' ? `${c.status} (legacy)` : c.status;
}

export const clientList = adminCommand({
  usage: `${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, CONNECTION_OPTIONS);
    const api = connect(NAME, values);
    const { items } = await api.request<{ items: ClientResource[] }>(
      'GET',
      await api.workspacePath('clients'),
      undefined,
      LIST,
    );
    if (values.json) {
      printJson(items);
      return 0;
    }
    if (items.length === 0) {
      console.log(`No API clients in workspace ${await api.workspace()} (within your environments and projects).`);
      return 0;
    }
    const now = Date.now();
    const rows = items.map((c) => [
      c.id,
      c.name,
      c.role,
      c.environments.join(','),
      c.projects.join(','),
      status(c, now),
    ]);
    console.log(table(['id', 'name', 'role', 'environments', 'projects', 'status'], rows));
    return 0;
  },
});
