import { clientsFilePath, readClientsFile } from '../config/clients-file.ts';
import { loadGatewayFile } from '../config/load.ts';
import { type Command, parse, UsageError } from './command.ts';

export const configCheck: Command = {
  usage: '--config FILE',
  async run(args) {
    const { values } = parse('config check', args, { config: { type: 'string', short: 'c' } });
    if (!values.config) throw new UsageError('config check: --config FILE is required');
    const config = await loadGatewayFile(values.config);
    const clientsFile = clientsFilePath(values.config, config);
    const fromFile = clientsFile ? await readClientsFile(clientsFile, config) : { clients: 0, keys: 0 };
    const clients = config.clients.length + config.legacyClients.length + fromFile.clients;
    const keys = config.clients.reduce((n, c) => n + c.keys.length, 0) + config.legacyClients.length + fromFile.keys;
    const source = clientsFile ? ` (${fromFile.clients} from ${clientsFile})` : '';
    console.log(
      `${values.config}: valid (${config.collections.length} collections, ${config.roles.length} roles, ${clients} clients${source}, ${keys} keys)`,
    );
    return 0;
  },
};
