import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffSpecs, nextEnvironment } from './promotion.ts';
import type { WorkspaceRecord } from './store/store.ts';

describe('the diff of a promotion', () => {
  const before = {
    upstream: { url: 'http://a' },
    target: { type: 'edge', gateway: 'test-edge' },
    endpoints: [
      { method: 'GET', path: '/items', permission: 'orders:read' },
      { method: 'POST', path: '/items', permission: 'orders:write' },
    ],
  };

  it('names fields by path and endpoints by method and path, not by position', () => {
    const after = {
      upstream: { url: 'http://b' },
      target: before.target,
      endpoints: [
        { method: 'GET', path: '/items/{id}', permission: 'orders:read' },
        { method: 'GET', path: '/items', permission: 'orders:list' },
      ],
      description: 'new',
    };
    assert.deepEqual(diffSpecs(before, after), [
      { path: 'upstream.url', change: 'changed', from: 'http://a', to: 'http://b' },
      { path: 'endpoints["GET /items"].permission', change: 'changed', from: 'orders:read', to: 'orders:list' },
      {
        path: 'endpoints["POST /items"]',
        change: 'removed',
        from: { method: 'POST', path: '/items', permission: 'orders:write' },
      },
      {
        path: 'endpoints["GET /items/{id}"]',
        change: 'added',
        to: { method: 'GET', path: '/items/{id}', permission: 'orders:read' },
      },
      { path: 'description', change: 'added', to: 'new' },
    ]);
  });

  it('is empty for the same spec, and lists every field as added on a first promotion', () => {
    assert.deepEqual(diffSpecs(before, structuredClone(before)), []);
    assert.deepEqual(
      diffSpecs({}, before).map((c) => [c.path, c.change]),
      [
        ['upstream', 'added'],
        ['target', 'added'],
        ['endpoints', 'added'],
      ],
    );
  });

  it('promotes to the next environment in the workspace order, and from the last one nowhere', () => {
    const ws = { environments: ['DEV', 'TEST', 'PROD'] } as WorkspaceRecord;
    assert.equal(nextEnvironment(ws, 'DEV'), 'TEST');
    assert.equal(nextEnvironment(ws, 'TEST'), 'PROD');
    assert.equal(nextEnvironment(ws, 'PROD'), undefined);
    assert.equal(nextEnvironment(ws, 'QA'), undefined);
  });
});
