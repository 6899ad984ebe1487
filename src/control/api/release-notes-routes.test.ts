/** Release notes from the control plane's own CHANGELOG.md, through the admin API on a real socket. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { parseChangelog } from './release-notes-routes.ts';

describe('release notes', () => {
  it('are the released sections of the changelog, without [Unreleased] or the anchors', () => {
    const sections = parseChangelog(
      '# Changelog\n\n## [Unreleased]\n\n- next\n\n<a id="v0.2.0"></a>\n\n## [0.2.0] - 2026-12-01\n\n### Added\n\n- two\n\n<a id="v0.1.0"></a>\n\n## [0.1.0] - 2026-11-22\n\n- one\n',
    );
    assert.deepEqual(sections, [
      { version: '0.2.0', date: '2026-12-01', markdown: '### Added\n\n- two' },
      { version: '0.1.0', date: '2026-11-22', markdown: '- one' },
    ]);
  });

  describe('GET /api/v1/release-notes', () => {
    let cp: AdminPlane;
    before(async () => {
      cp = await startAdminPlane({ softwareVersion: '0.1.0' });
    });
    after(() => cp?.close());
    const get = async (query: string) => {
      const res = await fetch(`${cp.base}/api/v1/release-notes${query}`, {
        headers: { authorization: `Bearer ${cp.token}` },
      });
      return {
        status: res.status,
        body: (await res.json()) as {
          current: string;
          items: { version: string; anchor: string; markdown: string }[];
          code?: string;
        },
      };
    };

    it("answers the versions after the one a gateway runs, up to the control plane's", async () => {
      const behind = await get('?since=0.0.9');
      assert.equal(behind.status, 200, JSON.stringify(behind.body));
      assert.equal(behind.body.current, '0.1.0');
      assert.deepEqual(
        behind.body.items.map((i) => [i.version, i.anchor]),
        [['0.1.0', 'v0.1.0']],
      );
      assert.ok(behind.body.items[0]!.markdown.length > 100, 'the section text');
      assert.deepEqual((await get('?since=0.1.0')).body.items, []);
      const bad = await get('?since=latest');
      assert.equal(bad.status, 400);
      const anonymous = await fetch(`${cp.base}/api/v1/release-notes`);
      assert.equal(anonymous.status, 401);
    });
  });
});
