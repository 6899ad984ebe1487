import { RoleInputSchema, type RoleResource } from '../config/resources.ts';
import { adminCommand, CONNECTION_HELP, CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { checkBody, listValues, printJson, requireFlags } from './admin-output.ts';
import { parse } from './command.ts';

const NAME = 'role create';

export const roleCreate = adminCommand({
  usage: `--name NAME [--permission P[,P] ...] [--description TEXT] ${CONNECTION_USAGE}\n\nPermissions: admin API operations (admin:clients:write, admin:collections:*), endpoint permissions
(invoices:read), "prefix:*" and "*". You can hand out only admin permissions your own role holds.\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, {
      ...CONNECTION_OPTIONS,
      name: { type: 'string' },
      permission: { type: 'string', multiple: true },
      description: { type: 'string' },
    });
    requireFlags(NAME, values, ['name']);
    const body = checkBody(
      NAME,
      RoleInputSchema,
      { name: values.name, description: values.description, permissions: listValues(values.permission) ?? [] },
      { permissions: 'permission' },
    );
    const api = connect(NAME, values);
    const role = await api.request<RoleResource>('POST', await api.workspacePath('roles'), body, {
      id: 'string',
      name: 'string',
      permissions: 'array',
    });
    if (values.json) {
      printJson(role);
      return 0;
    }
    const permissions = role.permissions.length ? `permissions ${role.permissions.join(', ')}` : 'no permissions';
    console.log(`Created role "${role.name}" (${role.id}) in workspace ${await api.workspace()} with ${permissions}`);
    return 0;
  },
});
