/**
 * Admin API: the release notes, served by the control plane from its own CHANGELOG.md (the package's), so that
 * the console's "Update to vX" badge opens them inside the console — many control planes have no internet.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { compareVersions } from '../gateways.ts';
import { invalid } from './errors.ts';
import { operation, type Operation } from './operation.ts';

/** CHANGELOG.md of the package this file belongs to (src/control/api/ → the package root). */
export const CHANGELOG_FILE = fileURLToPath(new URL('../../../CHANGELOG.md', import.meta.url));

export const ReleaseNotesSchema = z.strictObject({
  current: z.string().describe("This control plane's version"),
  items: z.array(
    z.strictObject({
      version: z.string(),
      date: z.string().optional(),
      anchor: z.string().describe('`v<version>`: the anchor of the section in CHANGELOG.md'),
      markdown: z.string().describe('The section as written in CHANGELOG.md (Markdown, without its heading)'),
    }),
  ),
});

export interface ReleaseSection {
  version: string;
  date?: string;
  markdown: string;
}

/** The released sections of a Keep a Changelog file (`## [1.2.0] - 2026-01-31`), newest first as written. */
export function parseChangelog(text: string): ReleaseSection[] {
  const out: ReleaseSection[] = [];
  const heading = /^## \[([^\]]+)\](?:\s*-\s*(\S+))?\s*$/gm;
  const marks = [...text.matchAll(heading)];
  marks.forEach((m, i) => {
    const version = m[1]!;
    if (!/^\d+\.\d+\.\d+/.test(version)) return; // [Unreleased]
    const start = m.index + m[0].length;
    const end = i + 1 < marks.length ? marks[i + 1]!.index : text.length;
    const markdown = text
      .slice(start, end)
      .replace(/<a id="[^"]*"><\/a>\s*$/, '')
      .trim();
    out.push({ version, ...(m[2] ? { date: m[2] } : {}), markdown });
  });
  return out;
}

let cached: Promise<ReleaseSection[]> | undefined;

export const releaseNotesOperations: Operation[] = [
  operation({
    id: 'listReleaseNotes',
    method: 'GET',
    path: '/api/v1/release-notes',
    summary:
      "The release notes of the versions after `?since=` (e.g. the version a gateway runs) up to this control plane's, newest first, from its own CHANGELOG.md; without `since`, every released version",
    tag: 'Gateways',
    permission: null,
    query: z.object({
      since: z
        .string()
        .regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/, { error: 'must be a version such as 0.1.0' })
        .optional()
        .describe('Only the versions after this one (e.g. the version a gateway runs)'),
    }),
    response: ReleaseNotesSchema,
    async handler({ query, plane }) {
      const since = query.get('since') ?? undefined;
      if (since !== undefined && !/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/.test(since))
        throw invalid('query.since', 'must be a version such as 0.1.0');
      cached ??= readFile(CHANGELOG_FILE, 'utf8').then(parseChangelog, (err: unknown) => {
        cached = undefined;
        throw err;
      });
      const current = plane.edge.softwareVersion;
      const items = (await cached)
        .filter((s) => compareVersions(s.version, current) <= 0)
        .filter((s) => since === undefined || compareVersions(s.version, since) > 0)
        .map((s) => ({ ...s, anchor: `v${s.version}` }));
      return { current, items };
    },
  }),
];
