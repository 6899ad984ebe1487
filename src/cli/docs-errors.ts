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

/** Prints the admin API's OpenAPI document (the one served at /api/openapi.json); the console's typed client is generated from it. */
export const docsOpenApi: Command = {
  usage: '[--out FILE]',
  async run(args) {
    const { values } = parse('docs openapi', args, { out: { type: 'string' } });
    const { OPERATIONS } = await import('../control/api/operations.ts');
    const { buildOpenApi } = await import('../control/api/openapi.ts');
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default;
    const text = `${JSON.stringify(buildOpenApi(OPERATIONS, pkg.version), null, 2)}\n`;
    if (values.out) {
      await writeFile(values.out, text);
      console.log(`wrote ${values.out}`);
    } else process.stdout.write(text);
    return 0;
  },
};
