import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { isStripped, REFUSED_METHOD_OVERRIDES, renderHeaderRules, STRIPPED } from './header-rules.ts';

describe('header rules', () => {
  it('are listed in docs/security.md exactly as the code applies them', async () => {
    const doc = await readFile(new URL('../../../docs/security.md', import.meta.url), 'utf8');
    const block = /<!-- header-rules:start -->\n([\s\S]*?)\n<!-- header-rules:end -->/.exec(doc)?.[1];
    assert.equal(
      block,
      renderHeaderRules(),
      'docs/security.md is out of date: paste renderHeaderRules() between its markers',
    );
  });

  it('strip every listed name and prefix, and nothing ordinary', () => {
    for (const rule of STRIPPED) {
      for (const name of rule.names) assert.ok(isStripped(name), name);
      for (const prefix of rule.prefixes ?? []) assert.ok(isStripped(`${prefix}anything`), prefix);
    }
    for (const name of [
      'accept',
      'content-type',
      'authorization',
      'x-api-key',
      'x-tenant',
      'x-originally',
      'cookie',
      'user-agent',
    ])
      assert.equal(isStripped(name), false, name);
  });

  it('list names in lower case only, and no method override among the stripped ones', () => {
    for (const rule of STRIPPED)
      for (const name of [...rule.names, ...(rule.prefixes ?? [])]) assert.equal(name, name.toLowerCase());
    for (const name of REFUSED_METHOD_OVERRIDES) assert.equal(isStripped(name), false, name);
  });
});
