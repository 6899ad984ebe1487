import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlPlaneSettingsSchema } from './control-plane.ts';
import { ApplyFileSchema, ClientInputSchema, CollectionInputSchema, WorkspaceInputSchema } from './resources.ts';
import { formatIssues, GatewayFileSchema } from './schema.ts';

/** What zod writes by itself: none of it may reach a user. */
const RAW =
  /Invalid input|Invalid option|expected \w+, received|Too (small|big)|Unrecognized key|Invalid string|Invalid discriminator/;

describe("zod's messages, as users read them", () => {
  const cases: [string, { safeParse(v: unknown): { success: boolean; error?: unknown } }, unknown][] = [
    ['a gateway file without tokenExchange', GatewayFileSchema, { server: { listen: { port: 'x' } } }],
    [
      'a collection of wrong types',
      CollectionInputSchema,
      { name: 5, basePath: [], endpoints: [], extra: 1, target: { type: 'moon' } },
    ],
    ['a client without a role', ClientInputSchema, { name: '', environments: 'PROD', allowedIps: ['300.1.1.1/8'] }],
    ['a workspace with no environments', WorkspaceInputSchema, { name: 'w', environments: [] }],
    ['an apply file', ApplyFileSchema, { environment: 7, collections: {}, prune: 'yes' }],
    ['control plane settings', ControlPlaneSettingsSchema, { adminPort: 'eighty', logLevel: 'loud' }],
  ];
  for (const [name, schema, value] of cases) {
    it(`are written for users: ${name}`, () => {
      const result = schema.safeParse(value);
      assert.equal(result.success, false);
      const text = formatIssues(result.error as never);
      assert.doesNotMatch(text, RAW, text);
    });
  }

  it('say what is missing, what type was expected, and what was given', () => {
    const r = GatewayFileSchema.safeParse({ server: { listen: { port: 99999 }, extra: 1 } });
    const text = formatIssues(r.error!);
    assert.match(text, /^tokenExchange: is required: add it \(an object\)$/m);
    assert.match(text, /^server\.listen\.port: must be at most 65535 \(got 99999\)$/m);
    assert.match(text, /^server: unknown field "extra": remove it, or check its spelling$/m);
  });
});
