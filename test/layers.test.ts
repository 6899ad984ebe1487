/**
 * The layering rule of eslint.config.js (shared ← config ← gateway ← control ← cli): `npm run lint` fails on an
 * import that runs back up, with a message that says which layers and what to do, and lets downward imports be.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';
import { REPO_ROOT } from './helpers.ts';

const eslint = new ESLint({ cwd: REPO_ROOT });

async function lint(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${REPO_ROOT}/${file}` });
  return result!.messages
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax')
    .map((m) => m.message);
}

describe('the layering rule', () => {
  for (const [file, specifier, above] of [
    ['src/shared/x.ts', '../config/schema.ts', 'config'],
    ['src/config/x.ts', '../gateway/instance.ts', 'gateway'],
    ['src/gateway/http/x.ts', '../../control/plane.ts', 'control'],
    ['src/gateway/x.ts', '../cli/main.ts', 'cli'],
    ['src/control/api/x.ts', '../../cli/command.ts', 'cli'],
    ['src/gateway/x.ts', '../testing/eventually.ts', 'testing'],
  ] as const) {
    it(`refuses an import of src/${above}/ from ${file}`, async () => {
      const messages = await lint(file, `import { x } from '${specifier}';\nexport const y = x;\n`);
      assert.equal(messages.length, 1, JSON.stringify(messages));
      assert.match(
        messages[0]!,
        new RegExp(`must not import src/${above}/: the layers are shared ← config ← gateway ← control ← cli`),
      );
    });
  }

  it('refuses a re-export and a dynamic import of a layer above too', async () => {
    assert.equal((await lint('src/config/x.ts', `export { x } from '../control/plane.ts';\n`)).length, 1);
    assert.equal((await lint('src/gateway/x.ts', `export const m = await import('../control/plane.ts');\n`)).length, 1);
    assert.deepEqual(await lint('src/control/x.ts', `export const m = await import('../gateway/index.ts');\n`), []);
  });

  it('lets src/control/ use the data plane through src/gateway/index.ts only', async () => {
    const [internal] = await lint(
      'src/control/x.ts',
      `import { a } from '../gateway/instance.ts';\nexport const b = a;\n`,
    );
    assert.match(internal ?? '', /public entry point src\/gateway\/index\.ts/);
    assert.deepEqual(
      await lint('src/control/api/x.ts', `import { a } from '../../gateway/index.ts';\nexport const b = a;\n`),
      [],
    );
  });

  it('lets a module import its own layer and those below it', async () => {
    assert.deepEqual(
      await lint(
        'src/control/x.ts',
        `import { a } from '../gateway/index.ts';\nimport { b } from '../config/schema.ts';\nimport { c } from '../shared/errors.ts';\nimport { d } from './plane.ts';\nexport const e = [a, b, c, d];\n`,
      ),
      [],
    );
    assert.deepEqual(
      await lint(
        'src/cli/x.ts',
        `import { a } from '../control/plane.ts';\nimport { b } from '../demo/upstream.ts';\nexport const c = [a, b];\n`,
      ),
      [],
    );
  });

  it('holds for the whole tree as it is', async () => {
    const results = await eslint.lintFiles(['src']);
    const upward = results.flatMap((r) =>
      r.messages
        .filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax')
        .map((m) => `${r.filePath}:${m.line} ${m.message}`),
    );
    assert.deepEqual(upward, []);
  });
});
