import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RouteCache, routeKey } from './route-cache.ts';

describe('the route cache', () => {
  it('answers what was stored, and nothing for what was not', () => {
    const cache = new RouteCache<number>(4);
    cache.set('a', 1);
    assert.equal(cache.get('a'), 1);
    assert.equal(cache.get('b'), undefined);
  });

  it('holds at most two generations: the oldest entries go first, whole', () => {
    const cache = new RouteCache<number>(2);
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i);
    assert.ok(cache.size <= 4, `size ${cache.size}`);
    assert.equal(cache.get('k0'), undefined, 'dropped with the oldest generation');
    assert.equal(cache.get('k4'), 4);
  });

  it('keeps an entry that is still used: a hit in the old generation moves it to the young one', () => {
    const cache = new RouteCache<number>(2);
    cache.set('hot', 1);
    cache.set('b', 2);
    cache.set('c', 3); // 'hot' and 'b' are now the old generation
    assert.equal(cache.get('hot'), 1);
    cache.set('d', 4); // the young generation ('c', 'hot') becomes old; 'b' is dropped
    cache.set('e', 5);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('hot'), 1);
  });

  it('does not store keys longer than its limit', () => {
    const cache = new RouteCache<number>(8, 10);
    cache.set('x'.repeat(11), 1);
    assert.equal(cache.size, 0);
  });

  it('gives requests the same key only when method, Host and target are all equal', () => {
    const keys = [
      routeKey('GET', '/a', 'h'),
      routeKey('GET', '/a', undefined),
      routeKey('GET', '/a', 'h2'),
      routeKey('POST', '/a', 'h'),
      routeKey('GET', '/a/b', 'h'),
      routeKey('GET', 'h', '/a'),
    ];
    assert.equal(new Set(keys).size, keys.length);
    assert.equal(routeKey('GET', '/a', 'h'), routeKey('GET', '/a', 'h'));
  });
});
