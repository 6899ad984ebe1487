// ESLint flat config: recommended JS + typescript-eslint rules (no type-aware rules: `tsc --noEmit` checks types).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers, from the ground floor up: shared ← config ← gateway ← control ← cli. A module may import its own
 * layer and those below it, never one above (docs/architecture.md): `config/` is the contract and imports only
 * `shared/`; an edge gateway runs without control-plane code; only `cli/` wires the layers together. Tests and
 * `src/testing/` may reach across layers to set up what they test.
 */
const LAYERS = ['shared', 'config', 'gateway', 'control', 'cli'];
const layerMessage = (layer, above) =>
  `src/${layer}/ must not import src/${above}/: the layers are shared ← config ← gateway ← control ← cli, and a module imports only its own layer and those below it (docs/architecture.md). Move what both need down a layer, or pass it in from above.`;
const layerRules = LAYERS.map((layer, i) => {
  // `demo/` (the demo upstream) is wired in by the CLI only; `testing/` is for tests.
  const above = [...LAYERS.slice(i + 1), ...(layer === 'cli' ? [] : ['demo']), 'testing'];
  return {
    files: [`src/${layer}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...above.map((a) => ({ group: [`**/${a}/**`, `**/${a}`], message: layerMessage(layer, a) })),
            // The control plane embeds the data plane through its one public entry point.
            ...(layer === 'control'
              ? [
                  {
                    group: ['**/gateway/**', '!**/gateway/index.ts'],
                    message:
                      'src/control/ uses the data plane through its public entry point src/gateway/index.ts only: export what it needs there.',
                  },
                ]
              : []),
          ],
        },
      ],
      // The same for `await import(…)`, which no-restricted-imports does not see.
      'no-restricted-syntax': [
        'error',
        ...above.map((a) => ({
          selector: `ImportExpression > Literal[value=/(^|\\/)${a}\\//]`,
          message: layerMessage(layer, a),
        })),
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'bench/out/', 'data/', 'console/dist/', 'console/src/api/schema.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'module',
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        structuredClone: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        WebSocket: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-control-regex': 'off',
    },
  },
  ...layerRules,
);
