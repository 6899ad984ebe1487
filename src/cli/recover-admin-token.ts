/**
 * `gatehouse control recover-admin-token`: a new token for the installation admin client, for whoever lost the one
 * printed on first start. It works on the control plane's database directly (the SQLite file in the data
 * directory, or PostgreSQL by DATABASE_URL), never over the network: holding the data is what proves the right to
 * it, as with `gitlab-rake` or Grafana's `grafana cli admin reset-admin-password`. Every earlier key of that client
 * is deleted in the same transaction, only the new key's SHA-256 is stored, and the token is printed once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createAdminClient } from '../control/workspaces.ts';
import { newId, nowIso } from '../control/ids.ts';
import { DEFAULT_DATA_DIR, isPostgresUrl, openStore, SQLITE_FILE_NAME, StoreOpenError } from '../control/store/open.ts';
import type { StoreOps, WorkspaceRecord } from '../control/store/store.ts';
import { ConfigError } from '../config/load.ts';
import { generateKey } from '../shared/api-key.ts';
import { jsonOutput } from './admin-client.ts';
import { type Command, parse, UsageError } from './command.ts';
import { printJson } from './output.ts';

const NAME = 'control recover-admin-token';
/** The name `control start` gives the installation admin client on first start (workspaces.ts). */
export const INSTALLATION_ADMIN = 'installation admin';

export interface Recovered {
  workspace: string;
  clientId: string;
  token: string;
  /** The client was gone and was created again. */
  created: boolean;
  /** Keys of the client that no longer work. */
  revokedKeys: number;
}

/** Gives the installation admin client of `workspace` one new key (and back its full rights); the token. */
export async function recover(tx: StoreOps, workspace: WorkspaceRecord, now = Date.now()): Promise<Recovered> {
  const at = nowIso(now);
  let role = await tx.getRole({ workspaceId: workspace.id, name: 'admin' });
  if (!role || !role.permissions.includes('*')) {
    // The built-in role was deleted or narrowed: the recovered client gets a role that grants everything again.
    role = {
      id: role?.id ?? newId('rol'),
      workspaceId: workspace.id,
      name: 'admin',
      description: role?.description ?? 'Every admin API operation and every API endpoint',
      permissions: ['*'],
      endpoints: role?.endpoints ?? [],
      createdAt: role?.createdAt ?? at,
      updatedAt: at,
    };
    if (await tx.getRole({ workspaceId: workspace.id, name: 'admin' })) await tx.updateRole(role);
    else await tx.insertRole(role);
  }
  const client = (await tx.listClients(workspace.id)).find(
    (c) => c.kind === 'standard' && c.operator && c.name === INSTALLATION_ADMIN,
  );
  if (!client) {
    const made = await createAdminClient(tx, workspace, { name: INSTALLATION_ADMIN, operator: true }, now);
    return { workspace: workspace.name, clientId: made.clientId, token: made.token, created: true, revokedKeys: 0 };
  }
  const keys = await tx.listKeys(client.id);
  for (const key of keys) await tx.deleteKey(client.id, key.id);
  // Back to what first start made: every environment and project, active, no expiry, no address restriction.
  await tx.updateClient({
    ...client,
    roleId: role.id,
    environments: ['*'],
    projects: ['*'],
    allowedIps: undefined,
    expiresAt: undefined,
    status: 'active',
    updatedAt: at,
  });
  const key = generateKey();
  await tx.insertKey({ id: key.id, clientId: client.id, hash: key.hash, createdAt: at });
  return { workspace: workspace.name, clientId: client.id, token: key.key, created: false, revokedKeys: keys.length };
}

export const recoverAdminToken: Command = {
  usage: `[--data-dir DIR] [--database-url postgres://…] [--workspace NAME] [--output table|json]

Run it on the control plane's machine, as the user that owns its data: it opens the database itself (the SQLite file
DIR/${SQLITE_FILE_NAME}, default DIR ./${DEFAULT_DATA_DIR}; or PostgreSQL from --database-url or DATABASE_URL) and needs
no network and no token. The installation admin client ("${INSTALLATION_ADMIN}", an operator client of the first
workspace, or of --workspace) gets a new token, printed once; its earlier tokens stop working; only the new
token's SHA-256 is stored. If that client was deleted it is created again.

The admin API refuses the old token at once. Gateways drop it with the next change of the workspace: on PostgreSQL
this command notifies the running control planes; on SQLite restart the control plane (or change anything in the
workspace) so that its gateways stop accepting the old token for API calls.`,
  async run(args) {
    const { values } = parse(NAME, args, {
      'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
      'database-url': { type: 'string' },
      workspace: { type: 'string' },
      json: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
    });
    const json = jsonOutput(NAME, values);
    const databaseUrl = values['database-url'] ?? (process.env.DATABASE_URL || undefined);
    const dataDir = values['data-dir'];
    if (!databaseUrl || !isPostgresUrl(databaseUrl)) {
      if (databaseUrl) throw new UsageError(`${NAME}: --database-url must be a postgres:// URL`);
      // Never create an empty database where the user mistyped the directory.
      if (!existsSync(join(dataDir, SQLITE_FILE_NAME)))
        throw new UsageError(
          `${NAME}: no control plane database in ${dataDir} (${SQLITE_FILE_NAME} not found): pass --data-dir, the directory \`gatehouse control start --data-dir\` uses (default ./${DEFAULT_DATA_DIR}), or DATABASE_URL for PostgreSQL`,
        );
    }
    let store;
    try {
      store = await openStore({ databaseUrl, dataDir });
    } catch (error) {
      if (error instanceof StoreOpenError) throw new ConfigError(`${NAME}: ${error.message}`);
      throw error;
    }
    try {
      const result = await store.transaction(async (tx) => {
        if ((await tx.getSetting('bootstrapped')) === undefined) return undefined;
        const workspace = values.workspace
          ? await tx.getWorkspace({ name: values.workspace })
          : ((await tx.getWorkspace({ name: 'default' })) ?? (await tx.listWorkspaces())[0]);
        if (!workspace) return null;
        return { record: workspace, recovered: await recover(tx, workspace) };
      });
      if (result === undefined)
        throw new UsageError(
          `${NAME}: this control plane was never started: \`gatehouse control start\` creates the installation admin token on its first start`,
        );
      if (result === null)
        throw new UsageError(`${NAME}: workspace "${values.workspace ?? 'default'}" not found in this database`);
      await store.notifyChange(result.record.id);
      const r = result.recovered;
      if (json) printJson(r);
      else
        console.log(
          [
            `${r.created ? 'Created the installation admin client again' : `Issued a new token for the installation admin client`} (${r.clientId}) of workspace ${r.workspace}${r.revokedKeys ? `; its ${r.revokedKeys} earlier token(s) no longer work` : ''}.`,
            store.kind === 'sqlite'
              ? 'If the control plane is running, restart it so that its gateways stop accepting the old token too (the admin API already refuses it).'
              : 'Running control planes were notified; their gateways stop accepting the old token.',
            '',
            'Token (store it now, it is not shown again):',
            '',
            `  ${r.token}`,
            '',
            `  export GATEHOUSE_TOKEN=${r.token}`,
          ].join('\n'),
        );
      return 0;
    } finally {
      await store.close();
    }
  },
};
