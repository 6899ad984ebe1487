/** Admin API: a workspace environment's token-signing keys (public parts only) and their rotation. */
import { z } from 'zod';
import { exportJWK, importJWK } from 'jose';
import { PublicSigningJwkSchema } from '../../config/schema.ts';
import { currentSigningKeys, describe, rotateSigningKeys } from '../signing-keys.ts';
import { notFound } from './errors.ts';
import { operation, type Operation } from './operation.ts';

const E = '/api/v1/workspaces/{workspace}/environments/{environment}/signing-keys';

const SigningKeysOut = z.object({
  active: z.string(),
  keys: z.array(
    z.object({
      kid: z.string(),
      alg: z.string(),
      retiresAt: z.string().optional(),
      publicJwk: PublicSigningJwkSchema.optional(),
    }),
  ),
});

export const signingKeyOperations: Operation[] = [
  operation({
    id: 'getSigningKeys',
    method: 'GET',
    path: E,
    summary:
      "The environment's token-signing keys (public parts): the active one and those still published after a rotation",
    tag: 'Signing keys',
    permission: 'admin:workspaces:read',
    response: SigningKeysOut,
    async handler({ workspace, environment, plane }) {
      const { keys, retiring } = await plane.store.transaction((tx) =>
        currentSigningKeys(tx, workspace.id, environment, plane.now()),
      );
      if (!keys) throw notFound(`signing keys of ${environment} (none yet: they are made at the first compile)`);
      const described = describe(keys, retiring);
      const publics = await Promise.all(
        keys.keys.map(async (k) => {
          const { d: _d, ...pub } = k.privateJwk as Record<string, unknown>;
          return exportJWK(
            await importJWK({ ...pub, alg: k.alg } as Parameters<typeof importJWK>[0], k.alg, { extractable: true }),
          );
        }),
      );
      return { ...described, keys: described.keys.map((k, i) => ({ ...k, publicJwk: publics[i] })) };
    },
  }),
  operation({
    id: 'rotateSigningKeys',
    method: 'POST',
    path: `${E}/rotate`,
    summary:
      'Make a new signing key active at once; the previous ones stay in the JWKS until the tokens they signed have expired',
    tag: 'Signing keys',
    permission: 'admin:workspaces:write',
    audit: { resourceType: 'signing-key', idParam: 'environment' },
    response: SigningKeysOut,
    async handler({ workspace, environment, plane }) {
      const settings = plane.tokenSettings ?? { algorithm: 'EdDSA' as const, ttl: 300_000 };
      const result = await plane.store.transaction((tx) =>
        rotateSigningKeys(tx, workspace.id, environment, settings, plane.now()),
      );
      await plane.changed(workspace.id);
      return result;
    },
  }),
];
