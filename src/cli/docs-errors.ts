import { writeFile } from 'node:fs/promises';
import { renderErrorDocs } from '../shared/errors.ts';
import { type Command, parse } from './command.ts';

export const docsErrors: Command = {
  usage: '[--out FILE]',
  async run(args) {
    const { values } = parse('docs errors', args, { out: { type: 'string', default: 'docs/errors.md' } });
    await writeFile(values.out, renderErrorDocs());
    console.log(`wrote ${values.out}`);
    return 0;
  },
};

export const docsAdminApi: Command = {
  usage: '[--out FILE]',
  async run(args) {
    const { values } = parse('docs admin-api', args, { out: { type: 'string', default: 'docs/admin-api.md' } });
    const { OPERATIONS } = await import('../control/api/operations.ts');
    const { renderAdminApiReference } = await import('../control/api/reference.ts');
    await writeFile(values.out, renderAdminApiReference(OPERATIONS));
    console.log(`wrote ${values.out}`);
    return 0;
  },
};
