#!/usr/bin/env node
/**
 * The `gatehouse` command: `gatehouse <noun> <verb> [options]`. User mistakes (bad arguments, bad config) print
 * what and where and exit 2; bugs print a stack trace and exit 1.
 */
import { ConfigError } from '../config/load.ts';
import { clientCreate } from './client-create.ts';
import { clientDelete } from './client-delete.ts';
import { clientList } from './client-list.ts';
import { clientRegenerate } from './client-regenerate.ts';
import { collectionApply } from './collection-apply.ts';
import { collectionCreate } from './collection-create.ts';
import { collectionList } from './collection-list.ts';
import { UsageError, type Command } from './command.ts';
import { configCheck } from './config-check.ts';
import { controlStart } from './control-start.ts';
import { demo, demoUpstream } from './demo.ts';
import { docsAdminApi, docsErrors } from './docs-errors.ts';
import { gatewayBootstrap } from './gateway-bootstrap.ts';
import { gatewayCreate, gatewayDelete, gatewayInstallCommand, gatewayList, gatewayRename } from './gateway-manage.ts';
import { gatewayRun } from './gateway-run.ts';
import { keyGenerate } from './key-generate.ts';
import { roleCreate } from './role-create.ts';
import { roleList } from './role-list.ts';

const COMMANDS: Record<string, Command> = {
  'control start': controlStart,
  'gateway run': gatewayRun,
  'gateway bootstrap': gatewayBootstrap,
  'gateway create': gatewayCreate,
  'gateway list': gatewayList,
  'gateway rename': gatewayRename,
  'gateway delete': gatewayDelete,
  'gateway install-command': gatewayInstallCommand,
  'key generate': keyGenerate,
  'client create': clientCreate,
  'client list': clientList,
  'client regenerate': clientRegenerate,
  'client delete': clientDelete,
  'role create': roleCreate,
  'role list': roleList,
  'collection create': collectionCreate,
  'collection list': collectionList,
  'collection apply': collectionApply,
  'config check': configCheck,
  'docs errors': docsErrors,
  'docs admin-api': docsAdminApi,
  'demo upstream': demoUpstream,
  demo,
};

const HELP = `gatehouse — API gateway

Usage: gatehouse <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`).join('\n')}

Run 'gatehouse <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(HELP);
    return 0;
  }
  if (argv[0] === '--version') {
    const pkg = await import('../../package.json', { with: { type: 'json' } });
    console.log(pkg.default.version);
    return 0;
  }
  const two = argv.slice(0, 2).join(' ');
  const name = COMMANDS[two] ? two : COMMANDS[argv[0]!] ? argv[0]! : undefined;
  if (!name) throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"\n\n${HELP}`);
  const command = COMMANDS[name]!;
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`Usage: gatehouse ${name} ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`gatehouse: ${error.message}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
