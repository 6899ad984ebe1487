import type { RoleResource } from '../config/resources.ts';
import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect, LIST } from './admin-client.ts';
import { printJson, table } from './admin-output.ts';
import { parse } from './command.ts';

const NAME = 'role list';

export const roleList = adminCommand({
  usage: `${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, CONNECTION_OPTIONS);
    const api = connect(NAME, values);
    const { items } = await api.request<{ items: RoleResource[] }>(
      'GET',
      await api.workspacePath('roles'),
      undefined,
      LIST,
    );
    if (values.json) {
      printJson(items);
      return 0;
    }
    const rows = items.map((r) => [
      r.name,
      r.permissions.join(',') || '-',
      String(r.endpoints.length),
      r.description ?? '',
    ]);
    console.log(table(['name', 'permissions', 'endpoints', 'description'], rows));
    return 0;
  },
});
