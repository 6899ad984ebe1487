import { generateKey } from '../shared/api-key.ts';
import { jsonOutput } from './admin-client.ts';
import { type Command, parse } from './command.ts';

export const keyGenerate: Command = {
  usage: '[--output table|json]',
  async run(args) {
    const { values } = parse('key generate', args, {
      json: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
    });
    const { key, hash } = generateKey();
    if (jsonOutput('key generate', values)) console.log(JSON.stringify({ key, hash: `sha256:${hash}` }));
    else
      console.log(
        `key:  ${key}\nhash: sha256:${hash}\n\nThe key is shown once: give it to the client. Put only the hash in the config (clients[].keys[].hash).`,
      );
    return 0;
  },
};
