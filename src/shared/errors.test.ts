import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERRORS, renderErrorDocs } from './errors.ts';

describe('the error code table', () => {
  it('matches docs/errors.md (regenerate with `gatehouse docs errors`)', () => {
    const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    assert.equal(docs, renderErrorDocs());
  });

  it('names every code GH_ERR_<AREA>_<WHAT> with a 4xx or 5xx status', () => {
    for (const [code, def] of Object.entries(ERRORS)) {
      assert.match(code, /^GH_ERR_[A-Z]+_[A-Z_]+$/);
      assert.ok(def.status >= 400 && def.status < 600, code);
      assert.ok(def.doc.length > 20, `${code} needs a doc line`);
    }
  });
});
