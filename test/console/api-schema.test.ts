/** The console's typed API client must follow the admin API: the committed schema.d.ts is what the generator makes now. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { generateSchema, SCHEMA_FILE } from '../../console/scripts/generate-api.ts';

describe('console API schema', () => {
  it('console/src/api/schema.d.ts matches the admin OpenAPI document (else run npm run console:api)', async () => {
    const committed = await readFile(SCHEMA_FILE, 'utf8');
    const fresh = await generateSchema();
    assert.ok(
      committed === fresh,
      'console/src/api/schema.d.ts is stale: the admin API changed. Run `npm run console:api`, then fix what the typecheck finds in console/src.',
    );
  });
});
