/** docs/admin-api.md, generated from the operation objects (`gatehouse docs admin-api`); a test fails on drift. */
import type { Operation } from './operation.ts';

export function renderAdminApiReference(operations: readonly Operation[]): string {
  const lines = [
    '# Admin API reference',
    '',
    '<!-- Generated from src/control/api/*-routes.ts by `gatehouse docs admin-api`; do not edit by hand. -->',
    '',
    'Every path starts with `/api/v1`. Authenticate with an API client token (`Authorization: Bearer <token>`) or a',
    "console session cookie. The caller's role must grant the operation's permission (patterns: exact, `prefix:*`,",
    '`*`). The machine-readable form is the OpenAPI 3.1 document at `/api/openapi.json`; concepts are in',
    '[control-plane.md](control-plane.md).',
    '',
  ];
  const tags = [...new Set(operations.map((o) => o.tag))];
  for (const tag of tags) {
    lines.push(`## ${tag}`, '', '| Operation | Permission | What it does |', '| --- | --- | --- |');
    for (const o of operations.filter((op) => op.tag === tag)) {
      const permission =
        o.permission === null ? 'any caller' : o.permission === 'public' ? 'public' : `\`${o.permission}\``;
      const query = o.query ? Object.keys(o.query.shape) : [];
      const takes = query.length ? ` — query parameters: ${query.map((q) => `\`${q}\``).join(', ')}` : '';
      lines.push(
        `| \`${o.method} ${o.path.replace('/api/v1', '')}\` | ${permission}${o.devOnly ? ' (DEV only)' : ''} | ${o.summary}${takes} |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}
