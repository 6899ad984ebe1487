import { loadGatewayFile } from '../config/load.ts';
import { type Command, parse, UsageError } from './command.ts';

export const configCheck: Command = {
  summary: 'validate a gateway config file and exit (2 when invalid)',
  usage: '--config FILE',
  async run(args) {
    const { values } = parse('config check', args, { config: { type: 'string', short: 'c' } });
    if (!values.config) throw new UsageError('config check: --config FILE is required');
    const config = await loadGatewayFile(values.config);
    const keys = config.clients.reduce((n, c) => n + c.keys.length, 0) + config.legacyClients.length;
    console.log(`${values.config}: valid (${config.collections.length} collections, ${config.roles.length} roles, ${config.clients.length + config.legacyClients.length} clients, ${keys} keys)`);
    return 0;
  },
};
