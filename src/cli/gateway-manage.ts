/** `gatehouse gateway list|create|rename|delete|install-command`: edge gateways through the admin API. */
import { z } from 'zod';
import { EnvironmentSchema, NameSchema } from '../config/schema.ts';
import {
  adminCommand,
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  connect,
  type Expected,
  LIST,
} from './admin-client.ts';
import { checkBody, printJson, requireFlags, table } from './admin-output.ts';
import { parse, UsageError } from './command.ts';

interface GatewayResource {
  id: string;
  name: string;
  environment: string;
  installMethod: 'docker' | 'helm';
  instancesOnline: number;
  versions: string[];
  lastSyncedAt?: string;
  updateAvailable?: { version: string; command: string; releaseNotes: string };
  instances: {
    instanceId: string;
    hostname?: string;
    online: boolean;
    softwareVersion: string;
    appliedVersion: number;
    lastSeenAt: string;
    lastError?: string;
    nackedVersion?: number;
  }[];
}

interface InstallCommand {
  token: string;
  expiresAt: string;
  command: string;
  localCommand: string;
}

interface GatewayWithInstall {
  gateway: GatewayResource;
  install: InstallCommand;
}

/** What a gateway answer, and one with an install command, must hold. */
const GATEWAY: Expected = { id: 'string', name: 'string', environment: 'string' };
const GATEWAY_WITH_INSTALL: Expected = {
  'gateway.id': 'string',
  'gateway.name': 'string',
  'gateway.environment': 'string',
  'install.command': 'string',
  'install.localCommand': 'string',
  'install.expiresAt': 'string',
};

/** Local check of the create body (the admin API checks again), so that mistakes name the flag. */
const CreateBodySchema = z.strictObject({
  name: NameSchema,
  environment: EnvironmentSchema,
  installMethod: z.enum(['docker', 'helm']),
});

function installLines(gateway: GatewayResource, install: InstallCommand): string[] {
  const dir = `./gatehouse-${gateway.name}`;
  return [
    '',
    `Install command (${gateway.installMethod}; its registration token works once, until ${install.expiresAt}; shown this once):`,
    '',
    `  ${install.command}`,
    '',
    'Or, on a machine with the gatehouse command:',
    '',
    `  ${install.localCommand}`,
    `  gatehouse gateway run --config ${dir}`,
    '',
    `A new token: gatehouse gateway install-command ${gateway.name}`,
  ];
}

/** One positional argument: the gateway's name (or id). */
function gatewayArgument(
  command: string,
  positionals: string[],
  count = 1,
  what = 'the gateway name (see `gatehouse gateway list`)',
): string[] {
  if (positionals.length !== count)
    throw new UsageError(`${command}: give ${what}, got ${positionals.length} argument(s)`);
  return positionals;
}

export const gatewayCreate = adminCommand({
  usage: `--name NAME --env ENV [--install-method docker|helm] ${CONNECTION_USAGE}\n\nOne gateway per environment; it may run any number of instances. --install-method defaults to docker.\n\n${CONNECTION_HELP}`,
  async run(args) {
    const NAME = 'gateway create';
    const { values } = parse(NAME, args, {
      ...CONNECTION_OPTIONS,
      name: { type: 'string' },
      env: { type: 'string' },
      'install-method': { type: 'string', default: 'docker' },
    });
    requireFlags(NAME, values, ['name', 'env']);
    const body = checkBody(
      NAME,
      CreateBodySchema,
      { name: values.name, environment: values.env, installMethod: values['install-method'] },
      { name: 'name', environment: 'env', installMethod: 'install-method' },
    );
    const api = connect(NAME, values);
    const answer = await api.request<GatewayWithInstall>(
      'POST',
      await api.workspacePath('gateways'),
      body,
      GATEWAY_WITH_INSTALL,
    );
    if (values.json) {
      printJson(answer);
      return 0;
    }
    const { gateway, install } = answer;
    console.log(
      [
        `Created edge gateway "${gateway.name}" (${gateway.id}) for environment ${gateway.environment} in workspace ${await api.workspace()}`,
        ...installLines(gateway, install),
      ].join('\n'),
    );
    return 0;
  },
});

export const gatewayInstallCommand = adminCommand({
  usage: `NAME ${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const NAME = 'gateway install-command';
    const { values, positionals } = parse(NAME, args, CONNECTION_OPTIONS, true);
    const [name] = gatewayArgument(NAME, positionals);
    const api = connect(NAME, values);
    const answer = await api.request<GatewayWithInstall>(
      'POST',
      await api.workspacePath('gateways', name!, 'install-command'),
      {},
      GATEWAY_WITH_INSTALL,
    );
    if (values.json) {
      printJson(answer);
      return 0;
    }
    console.log(
      [
        `New install command for edge gateway "${answer.gateway.name}" (${answer.gateway.id}); earlier unused tokens no longer work.`,
        ...installLines(answer.gateway, answer.install),
      ].join('\n'),
    );
    return 0;
  },
});

export const gatewayList = adminCommand({
  usage: `${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const NAME = 'gateway list';
    const { values } = parse(NAME, args, CONNECTION_OPTIONS);
    const api = connect(NAME, values);
    const { items } = await api.request<{ items: GatewayResource[] }>(
      'GET',
      await api.workspacePath('gateways'),
      undefined,
      LIST,
    );
    if (values.json) {
      printJson(items);
      return 0;
    }
    if (items.length === 0) {
      console.log(
        `No edge gateways in workspace ${await api.workspace()} (within your environments). Create one: gatehouse gateway create --name NAME --env ENV`,
      );
      return 0;
    }
    const rows = items.map((g) => [
      g.name,
      g.environment,
      g.installMethod,
      String(g.instancesOnline),
      g.versions.join(',') || '-',
      g.lastSyncedAt ?? 'never',
      g.updateAvailable ? `${g.updateAvailable.version} available` : '-',
    ]);
    const lines = [table(['name', 'environment', 'install', 'online', 'versions', 'last synced', 'update'], rows)];
    const instances = items.flatMap((g) =>
      g.instances.map((i) => [
        g.name,
        i.instanceId,
        i.hostname ?? '-',
        i.softwareVersion,
        String(i.appliedVersion),
        i.online ? 'online' : 'offline',
        i.lastSeenAt,
        i.lastError ? `NACK v${i.nackedVersion ?? '?'}: ${i.lastError}` : '-',
      ]),
    );
    if (instances.length > 0)
      lines.push(
        '',
        table(['gateway', 'instance', 'host', 'version', 'config', 'status', 'last seen', 'error'], instances),
      );
    for (const g of items) {
      if (g.updateAvailable)
        lines.push(
          '',
          `Update available for "${g.name}": Gatehouse ${g.updateAvailable.version} (release notes: ${g.updateAvailable.releaseNotes}). Instances keep their config directory across the update:`,
          `  ${g.updateAvailable.command}`,
        );
    }
    console.log(lines.join('\n'));
    return 0;
  },
});

export const gatewayRename = adminCommand({
  usage: `NAME NEW-NAME ${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const NAME = 'gateway rename';
    const { values, positionals } = parse(NAME, args, CONNECTION_OPTIONS, true);
    const [from, to] = gatewayArgument(NAME, positionals, 2, 'the gateway name and its new name');
    const body = checkBody(NAME, z.strictObject({ name: NameSchema }), { name: to }, { name: 'NEW-NAME' });
    const api = connect(NAME, values);
    const gateway = await api.request<GatewayResource>(
      'PATCH',
      await api.workspacePath('gateways', from!),
      body,
      GATEWAY,
    );
    if (values.json) printJson(gateway);
    else
      console.log(
        `Renamed edge gateway "${from}" (${gateway.id}) to "${gateway.name}". Running instances keep their identity; no new bootstrap is needed.`,
      );
    return 0;
  },
});

export const gatewayDelete = adminCommand({
  usage: `NAME ${CONNECTION_USAGE}\n\n${CONNECTION_HELP}`,
  async run(args) {
    const NAME = 'gateway delete';
    const { values, positionals } = parse(NAME, args, CONNECTION_OPTIONS, true);
    const [name] = gatewayArgument(NAME, positionals);
    const api = connect(NAME, values);
    await api.request('DELETE', await api.workspacePath('gateways', name!));
    if (values.json) printJson({ deleted: name });
    else
      console.log(
        `Deleted edge gateway "${name}": its certificates are revoked and its instances disconnected. Collections deployed to it are served nowhere until retargeted.`,
      );
    return 0;
  },
});
