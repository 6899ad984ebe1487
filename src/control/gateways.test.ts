import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import { CHANGELOG_URL, describeGateway, releaseNotesUrl } from './gateways.ts';
import type { GatewayInstanceRecord, GatewayRecord } from './store/store.ts';

const NOW = Date.parse('2026-11-22T10:00:00.000Z');
const gateway: GatewayRecord = {
  id: 'gw_1',
  workspaceId: 'wsp_1',
  environment: 'PROD',
  name: 'eu-1',
  installMethod: 'docker',
  createdAt: '2026-11-01T00:00:00.000Z',
  updatedAt: '2026-11-01T00:00:00.000Z',
};
const instance = (instanceId: string, softwareVersion: string): GatewayInstanceRecord => ({
  gatewayId: gateway.id,
  instanceId,
  softwareVersion,
  appliedVersion: 1,
  connected: true,
  firstSeenAt: new Date(NOW - 60_000).toISOString(),
  lastSeenAt: new Date(NOW - 1000).toISOString(),
});

describe('release notes of an available update', () => {
  it("link to the control plane's version in the changelog when an online instance is behind", () => {
    const described = describeGateway(
      gateway,
      [instance('i-1', '0.0.9'), instance('i-2', '0.1.0')],
      { softwareVersion: '0.1.0' },
      NOW,
    );
    assert.equal(described.updateAvailable?.releaseNotes, `${CHANGELOG_URL}#v0.1.0`);
    assert.equal(
      describeGateway(gateway, [instance('i-2', '0.1.0')], { softwareVersion: '0.1.0' }, NOW).updateAvailable,
      undefined,
    );
  });

  it("find this version's section in CHANGELOG.md, under its anchor (Keep a Changelog headings)", () => {
    const changelog = readFileSync(new URL('../../CHANGELOG.md', import.meta.url), 'utf8');
    const anchor = new URL(releaseNotesUrl(pkg.version)).hash.slice(1);
    const escaped = pkg.version.replaceAll('.', '\\.');
    assert.match(
      changelog,
      new RegExp(`^<a id="${anchor}"></a>\\n\\n## \\[${escaped}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm'),
    );
    for (const heading of changelog.match(/^## \[\d+\.\d+\.\d+\].*$/gm) ?? []) {
      const version = /\[(.+?)\]/.exec(heading)![1]!;
      assert.ok(
        changelog.includes(`<a id="${new URL(releaseNotesUrl(version)).hash.slice(1)}"></a>\n\n${heading}`),
        `the anchor of ${heading}`,
      );
    }
  });
});
