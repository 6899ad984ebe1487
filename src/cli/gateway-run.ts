import type { Logger } from 'pino';
import { startGateway } from '../gateway/runtime.ts';
import { type Command, parse, portOption, UsageError } from './command.ts';
import { createLogger } from './logger.ts';

export const gatewayRun: Command = {
  summary: 'run a gateway from a declarative config file (YAML or JSON)',
  usage: '--config FILE [--port N] [--ops-port N] [--host ADDR]',
  async run(args) {
    const { values } = parse('gateway run', args, {
      config: { type: 'string', short: 'c' },
      port: { type: 'string' },
      'ops-port': { type: 'string' },
      host: { type: 'string' },
    });
    if (!values.config) throw new UsageError('gateway run: --config FILE is required');
    const port = portOption('gateway run', 'port', values.port);
    const opsPort = portOption('gateway run', 'ops-port', values['ops-port']);
    let logger: Logger | undefined;
    const runtime = await startGateway({ configFile: values.config, logger: (level) => (logger = createLogger(level)), port, opsPort, host: values.host });
    await waitForSignal();
    logger?.info('shutting down');
    await runtime.close();
    logger?.flush();
    return 0;
  },
};

export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
