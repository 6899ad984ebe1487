import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import {
  CHANGELOG_URL,
  describeGateway,
  isLoopbackEndpoint,
  issueInstallCommand,
  releaseNotesUrl,
} from './gateways.ts';
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

describe('install commands for a control plane that advertises a routable address', () => {
  const store = {
    deleteRegistrationTokens: async () => 0,
    insertRegistrationToken: async () => {},
  } as unknown as Parameters<typeof issueInstallCommand>[0];
  const edge = {
    caPin: `sha256:${'a'.repeat(64)}`,
    softwareVersion: '0.1.0',
    endpoints: {
      bootstrap: 'https://cp.example.com:8443',
      sync: 'cp.example.com:8444',
      telemetry: 'cp.example.com:8444',
      serverName: 'gatehouse-control-plane',
    },
  };

  it('Docker: dials the advertised address from the container, publishes 8090 (not the cloud gateway port 8080)', async () => {
    const install = await issueInstallCommand(store, gateway, edge, NOW);
    const [bootstrap, run] = install.command.split(' && ');
    assert.match(bootstrap!, / --url https:\/\/cp\.example\.com:8443 -o \/etc\/edge-gateway standalone$/);
    assert.doesNotMatch(install.command, /--network host|127\.0\.0\.1/);
    assert.match(
      run!,
      / -p 8090:8080 gatehouse\/gatehouse:0\.1\.0 gateway run --config \/etc\/edge-gateway --host 0\.0\.0\.0$/,
    );
    // The plain CLI: no container, no Docker, the gateway's default ports (it runs on another machine).
    assert.match(
      install.localCommand,
      /^bin\/gatehouse gateway bootstrap .* standalone && bin\/gatehouse gateway run$/,
    );
    assert.equal(isLoopbackEndpoint(edge.endpoints.bootstrap), false);
    for (const url of ['https://127.0.0.1:8443', 'https://localhost:8443', 'https://[::1]:8443', 'https://127.1.2.3:1'])
      assert.equal(isLoopbackEndpoint(url), true, url);
  });
});

describe('what the gateways page shows of a gateway', () => {
  it('is online with a connected instance, in fallback while a disconnected one was seen in the last day, else offline', () => {
    const away = (hours: number): GatewayInstanceRecord => ({
      ...instance('i-away', '0.1.0'),
      connected: false,
      lastSeenAt: new Date(NOW - hours * 3600_000).toISOString(),
    });
    const status = (instances: GatewayInstanceRecord[]) =>
      describeGateway(gateway, instances, { softwareVersion: '0.1.0' }, NOW).status;
    assert.equal(status([instance('i-1', '0.1.0'), away(1)]), 'online');
    assert.equal(status([away(1)]), 'fallback');
    assert.equal(status([away(25)]), 'offline');
    assert.equal(status([]), 'offline');
    const described = describeGateway(gateway, [away(1)], { softwareVersion: '0.1.0' }, NOW);
    assert.equal(described.instances[0]!.fallback, true);
    assert.equal(described.configVersion, 0, 'no online instance serves a configuration');
  });

  it('offers the update command of each install method and the release notes from the control plane', () => {
    const described = describeGateway(
      gateway,
      [{ ...instance('i-1', '0.0.9'), appliedVersion: 7 }],
      { softwareVersion: '0.1.0' },
      NOW,
      { certificateExpiresAt: '2026-11-23T10:00:00.000Z' },
    );
    assert.equal(described.configVersion, 7);
    assert.equal(described.certificateExpiresAt, '2026-11-23T10:00:00.000Z');
    const update = described.updateAvailable!;
    assert.equal(update.command, update.commands.docker);
    assert.match(update.commands.docker, /^docker pull .*:0\.1\.0 /);
    assert.match(update.commands.helm, /^helm upgrade gatehouse-eu-1 .* --set image\.tag=0\.1\.0$/);
    assert.equal(update.releaseNotesPath, '/api/v1/release-notes?since=0.0.9');
  });
});
