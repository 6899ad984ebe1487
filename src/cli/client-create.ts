import { ClientInputSchema, type ClientResource } from '../config/resources.ts';
import {
  adminCommand,
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  connect,
  type Expected,
} from './admin-client.ts';
import { checkBody, listValues, printJson, requireFlags, tokenLines } from './admin-output.ts';
import { parse } from './command.ts';

const NAME = 'client create';

/** Body fields → the flags that set them, for local validation messages. */
const CLIENT_FLAGS: Record<string, string> = {
  name: 'name',
  role: 'role',
  environments: 'env',
  projects: 'project',
  allowedIps: 'allow-ip',
  userId: 'user-id',
  orgId: 'org-id',
  expiresAt: 'expires-at',
};

export interface ClientWithToken {
  client: ClientResource;
  token: string;
}

/** What a `ClientWithToken` answer must hold (create and regenerate). */
export const CLIENT_WITH_TOKEN: Expected = {
  'client.id': 'string',
  'client.name': 'string',
  'client.environments': 'array',
  'client.projects': 'array',
  'client.keys': 'array',
  token: 'string',
};

/** The human lines describing a client: name, id, role and scope. */
function describeClient(c: ClientResource): string[] {
  return [
    `  role          ${c.role}`,
    `  environments  ${c.environments.join(', ')}`,
    `  projects      ${c.projects.join(', ')}`,
    ...(c.allowedIps?.length ? [`  allowed IPs   ${c.allowedIps.join(', ')}`] : []),
    ...(c.userId ? [`  user id       ${c.userId}`] : []),
    ...(c.orgId ? [`  org id        ${c.orgId}`] : []),
    ...(c.expiresAt ? [`  expires at    ${c.expiresAt}`] : []),
  ];
}

export const clientCreate = adminCommand({
  usage: `--name NAME --role ROLE --env ENV[,ENV] --project P[,P] [--allow-ip CIDR[,CIDR]] [--user-id ID] [--org-id ID] [--expires-at ISO-8601] ${CONNECTION_USAGE}\n\n--env, --project and --allow-ip take comma lists and may be repeated; "*" means all environments or projects.\n\n${CONNECTION_HELP}`,
  async run(args) {
    const { values } = parse(NAME, args, {
      ...CONNECTION_OPTIONS,
      name: { type: 'string' },
      role: { type: 'string' },
      env: { type: 'string', multiple: true },
      project: { type: 'string', multiple: true },
      'allow-ip': { type: 'string', multiple: true },
      'user-id': { type: 'string' },
      'org-id': { type: 'string' },
      'expires-at': { type: 'string' },
    });
    const environments = listValues(values.env);
    const projects = listValues(values.project);
    requireFlags(NAME, { ...values, env: environments, project: projects }, ['name', 'role', 'env', 'project']);
    const body = checkBody(
      NAME,
      ClientInputSchema,
      {
        name: values.name,
        role: values.role,
        environments,
        projects,
        allowedIps: listValues(values['allow-ip']),
        userId: values['user-id'],
        orgId: values['org-id'],
        expiresAt: values['expires-at'],
      },
      CLIENT_FLAGS,
    );
    const api = connect(NAME, values);
    const answer = await api.request<ClientWithToken>(
      'POST',
      await api.workspacePath('clients'),
      body,
      CLIENT_WITH_TOKEN,
    );
    if (values.json) {
      printJson(answer);
      return 0;
    }
    const { client, token } = answer;
    console.log(
      [
        `Created API client "${client.name}" (${client.id}) in workspace ${await api.workspace()}`,
        ...describeClient(client),
        ...tokenLines(token),
      ].join('\n'),
    );
    return 0;
  },
});
