import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlPlaneSettingsSchema } from './control-plane.ts';

describe('control plane settings', () => {
  it('reads the flags into what startControlPlane takes: durations in milliseconds, numbers, defaults', () => {
    assert.deepEqual(
      ControlPlaneSettingsSchema.parse({
        gatewayCertificateValidity: '2h',
        gatewayReenrollWindow: '0',
        alertAuthFailures: '5',
        adminPort: '0',
        syncPort: '8444',
        sessionIdleTimeout: '30m',
        sessionLifetime: '12h',
        auditRetentionDays: '90',
      }),
      {
        dataDir: 'data',
        host: '127.0.0.1',
        cloudEgress: 'any',
        gatewayCertificateValidity: 7_200_000,
        gatewayReenrollWindow: 0,
        alertAuthFailures: 5,
        adminPort: 0,
        syncPort: 8444,
        sessionIdleTimeout: 1_800_000,
        sessionLifetime: 43_200_000,
        auditRetentionDays: 90,
      },
    );
  });

  it('says what is wrong with each setting, in words that complete "--<flag> …"', () => {
    const message = (input: object) => {
      const parsed = ControlPlaneSettingsSchema.safeParse(input);
      assert.equal(parsed.success, false);
      return `${String(parsed.error!.issues[0]!.path[0])} ${parsed.error!.issues[0]!.message}`;
    };
    assert.equal(
      message({ gatewayCertificateValidity: '500ms' }),
      'gatewayCertificateValidity must be a duration of at least 1s such as 24h or 30m',
    );
    assert.equal(
      message({ gatewayReenrollWindow: 'forever' }),
      'gatewayReenrollWindow must be a duration such as 30d or 12h (0: only certificates not expired yet)',
    );
    assert.equal(message({ alertAuthFailures: '1.5' }), 'alertAuthFailures must be a positive whole number');
    assert.equal(message({ cloudEgress: 'none' }), 'cloudEgress must be any or public');
    assert.equal(
      message({ sessionIdleTimeout: '30s' }),
      'sessionIdleTimeout must be a duration of at least 1m such as 30m or 2h',
    );
    assert.equal(
      message({ sessionLifetime: 'long' }),
      'sessionLifetime must be a duration of at least 1m such as 12h or 7d',
    );
    assert.equal(message({ auditRetentionDays: '0' }), 'auditRetentionDays must be a whole number of days, at least 1');
    assert.equal(message({ adminPort: '0x50' }), 'adminPort must be a whole number from 0 to 65535');
    assert.equal(
      message({ publicUrl: 'https://api.example.com/' }),
      'publicUrl must be an http:// or https:// URL without a query or trailing "/"',
    );
    assert.equal(
      message({ cloudRateLimitRedisUrl: 'http://127.0.0.1:6379' }),
      'cloudRateLimitRedisUrl must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379',
    );
  });
});
