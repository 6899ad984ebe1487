import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize, comparableParam, decodeSegment, segmentDepth, type CanonicalTarget } from './canonical-path.ts';
import type { ErrorCode } from '../../shared/errors.ts';

function accepted(rawTarget: string, host?: string): CanonicalTarget {
  const r = canonicalize(rawTarget, host);
  if (!r.ok) assert.fail(`expected ${JSON.stringify(rawTarget)} to be accepted, got ${r.code}: ${r.detail}`);
  return r.value;
}

function refused(rawTarget: string, code: ErrorCode, host?: string): string {
  const r = canonicalize(rawTarget, host);
  if (r.ok)
    assert.fail(
      `expected ${JSON.stringify(rawTarget)} to be refused with ${code}, got path ${JSON.stringify(r.value.path)}`,
    );
  assert.equal(r.code, code, `${JSON.stringify(rawTarget)}: ${r.detail}`);
  assert.ok(r.detail.length > 0);
  return r.detail;
}

describe('canonicalize accepts', () => {
  test('a plain path is returned unchanged with no query and no dot-dot depth', () => {
    assert.deepEqual(accepted('/api/v1/users/42'), {
      path: '/api/v1/users/42',
      query: '',
      minDepthAfterDotDot: Infinity,
    });
  });

  test('the root path is returned as is', () => {
    assert.deepEqual(accepted('/'), { path: '/', query: '', minDepthAfterDotDot: Infinity });
  });

  test('the query is preserved raw, without the question mark', () => {
    const v = accepted('/search?q=a%2Fb%25c&x=1&y=%E2%82%AC&z=%');
    assert.equal(v.path, '/search');
    assert.equal(v.query, 'q=a%2Fb%25c&x=1&y=%E2%82%AC&z=%');
  });

  test('an empty query after a bare question mark becomes the empty string', () => {
    assert.deepEqual(accepted('/a?'), { path: '/a', query: '', minDepthAfterDotDot: Infinity });
  });

  test('a trailing slash is kept', () => {
    assert.equal(accepted('/a/b/').path, '/a/b/');
  });

  test('sub-delimiters, colon, at-sign and dots inside segments stay raw', () => {
    assert.equal(
      accepted("/a:b/@me/x!$&'()*+,=/v1.2/file.json/.well-known/..x").path,
      "/a:b/@me/x!$&'()*+,=/v1.2/file.json/.well-known/..x",
    );
  });

  test('percent-escapes of unreserved characters are decoded', () => {
    assert.equal(accepted('/%41b%63/%7E%7euser/%2D%5F%30').path, '/Abc/~~user/-_0');
  });

  test('percent-escapes of reserved characters are kept and upper-cased', () => {
    assert.equal(accepted('/a%3ab/%40me/%2c%20%5b').path, '/a%3Ab/%40me/%2C%20%5B');
  });

  test('a lone %25 not followed by two hex digits is kept', () => {
    assert.equal(accepted('/100%25/%25z/%25').path, '/100%25/%25z/%25');
  });

  test('valid UTF-8 percent-escapes are kept and upper-cased', () => {
    assert.equal(accepted('/caf%c3%a9/%F0%9F%98%80').path, '/caf%C3%A9/%F0%9F%98%80');
  });

  test('raw non-ASCII characters are percent-encoded as UTF-8', () => {
    assert.equal(accepted('/café/€/😀').path, '/caf%C3%A9/%E2%82%AC/%F0%9F%98%80');
  });

  test('raw characters outside pchar are percent-encoded', () => {
    assert.equal(accepted('/a b/"q"/<x>/`{|}^/[0]').path, '/a%20b/%22q%22/%3Cx%3E/%60%7B%7C%7D%5E/%5B0%5D');
  });

  test('raw non-ASCII characters in the query are percent-encoded as UTF-8', () => {
    assert.equal(accepted('/a?name=café').query, 'name=caf%C3%A9');
  });

  test('consecutive slashes are merged', () => {
    assert.equal(accepted('//a///b//').path, '/a/b/');
    assert.equal(accepted('//').path, '/');
  });

  test('single-dot segments are removed, raw or encoded', () => {
    const v = accepted('/a/./b/%2e/c');
    assert.equal(v.path, '/a/b/c');
    assert.equal(v.minDepthAfterDotDot, Infinity);
  });

  test('a trailing single-dot segment leaves a trailing slash', () => {
    assert.equal(accepted('/a/b/.').path, '/a/b/');
  });

  test('a double-dot segment pops one segment and records the lowest depth reached', () => {
    const v = accepted('/api/v1/../v2/users');
    assert.equal(v.path, '/api/v2/users');
    assert.equal(v.minDepthAfterDotDot, 1);
  });

  test('the lowest depth is kept across several double-dot segments', () => {
    const v = accepted('/a/b/c/../../d/e/f/../g?x=1');
    assert.deepEqual(v, { path: '/a/d/e/g', query: 'x=1', minDepthAfterDotDot: 1 });
  });

  test('a double-dot segment back to the root gives depth zero', () => {
    const v = accepted('/a/../b');
    assert.deepEqual(v, { path: '/b', query: '', minDepthAfterDotDot: 0 });
  });

  test('a trailing double-dot segment leaves a trailing slash', () => {
    const v = accepted('/a/b/..');
    assert.equal(v.path, '/a/');
    assert.equal(v.minDepthAfterDotDot, 1);
    assert.equal(accepted('/a/..').path, '/');
  });

  test('encoded double-dot segments are resolved like raw ones', () => {
    for (const dots of ['%2e%2e', '%2E%2e', '.%2e', '%2E.']) {
      const v = accepted(`/a/b/${dots}/c`);
      assert.equal(v.path, '/a/c', dots);
      assert.equal(v.minDepthAfterDotDot, 1, dots);
    }
  });

  test('an absolute-form target whose authority matches the Host header is accepted', () => {
    assert.deepEqual(accepted('http://api.example.com/a/b?c=d', 'api.example.com'), {
      path: '/a/b',
      query: 'c=d',
      minDepthAfterDotDot: Infinity,
    });
  });

  test('an absolute-form target is compared with Host case-insensitively and with default ports equal to none', () => {
    assert.equal(accepted('HTTP://API.Example.com:80/a', 'api.example.com').path, '/a');
    assert.equal(accepted('https://api.example.com/a', 'API.example.com:443').path, '/a');
    assert.equal(accepted('http://api.example.com:8080/a', 'api.example.com:8080').path, '/a');
    assert.equal(accepted('http://[::1]:8080/a', '[::1]:8080').path, '/a');
  });

  test('an absolute-form target without a Host header is accepted', () => {
    assert.equal(accepted('https://api.example.com/x').path, '/x');
  });

  test('an absolute-form target with an empty path gets the root path', () => {
    assert.deepEqual(accepted('http://h', 'h'), { path: '/', query: '', minDepthAfterDotDot: Infinity });
    assert.deepEqual(accepted('http://h?a=1', 'h'), { path: '/', query: 'a=1', minDepthAfterDotDot: Infinity });
  });

  test('an absolute-form target path is canonicalized like an origin-form one', () => {
    assert.equal(accepted('http://h//a/./b/../%7Ec', 'h').path, '/a/~c');
  });

  test('canonical output is a fixed point of canonicalize', () => {
    const inputs = ['/a/%7e/%3a/café/../b//c/.', '/%C3%A9/%2e%2e/x y', '/a/b/', '/a%25b/', '/Z%5b%5D'];
    for (const input of inputs) {
      const once = accepted(input).path;
      assert.equal(accepted(once).path, once, input);
    }
  });
});

describe('canonicalize refuses', () => {
  test('an asterisk-form target as malformed', () => {
    refused('*', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('an authority-form target as malformed', () => {
    refused('api.example.com:443', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('an empty target and relative paths as malformed', () => {
    refused('', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('a/b', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('?a', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('an absolute-form target with another scheme as malformed', () => {
    refused('ftp://h/a', 'GH_ERR_REQUEST_MALFORMED_TARGET', 'h');
  });

  test('an absolute-form target with userinfo or a bad authority as malformed', () => {
    refused('http://user@h/a', 'GH_ERR_REQUEST_MALFORMED_TARGET', 'h');
    refused('http:///a', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('http://h:port/a', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('http://h:99999/a', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('a fragment anywhere as malformed', () => {
    refused('/a#b', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/a?b#c', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('http://h#x', 'GH_ERR_REQUEST_MALFORMED_TARGET', 'h');
  });

  test('an invalid percent-escape as malformed', () => {
    refused('/a%zz', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/a%4', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/a%', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/a%4?x', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('percent-escapes that are not valid UTF-8 as malformed', () => {
    refused('/%C3', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // truncated sequence
    refused('/%C3/%A9', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // split by a slash
    refused('/%C3x', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/%FF', 'GH_ERR_REQUEST_MALFORMED_TARGET');
    refused('/%C0%AF', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // overlong '/'
    refused('/%E0%80%AF', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // overlong '/'
    refused('/%ED%A0%80', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // UTF-16 surrogate
    refused('/%F4%90%80%80', 'GH_ERR_REQUEST_MALFORMED_TARGET'); // above U+10FFFF
  });

  test('a lone surrogate in the path as malformed', () => {
    refused('/a\uD800b', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('an encoded slash as an encoded slash', () => {
    refused('/a%2Fb', 'GH_ERR_REQUEST_ENCODED_SLASH');
    refused('/a%2fb', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  test('an encoded backslash as an encoded slash', () => {
    refused('/a%5Cb', 'GH_ERR_REQUEST_ENCODED_SLASH');
    refused('/a%5cb', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  test('a raw backslash as an encoded slash', () => {
    refused('/a\\b', 'GH_ERR_REQUEST_ENCODED_SLASH');
    refused('/a/..\\..\\admin', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  test('%25 followed by two hex digits as double encoding', () => {
    refused('/a%252Fb', 'GH_ERR_REQUEST_DOUBLE_ENCODING');
    refused('/%252e%252e/admin', 'GH_ERR_REQUEST_DOUBLE_ENCODING');
  });

  test('%25 followed by percent-encoded hex digits as double encoding', () => {
    refused('/a%25%32%46b', 'GH_ERR_REQUEST_DOUBLE_ENCODING');
  });

  test('a raw control character as a control character', () => {
    refused('/a\u0000b', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    refused('/a\tb', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    refused('/a\u007fb', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  test('a percent-encoded NUL or control character in the path as a control character', () => {
    refused('/a%00b', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    refused('/a%0d%0aX-Injected:%201', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    refused('/a%7F', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  test('a raw control character or an encoded NUL in the query as a control character', () => {
    refused('/a?x=\u0001', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    refused('/a?x=%00', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  test('other encoded control characters in the query are data and pass through encoded', () => {
    assert.equal(accepted('/a?text=line1%0Aline2%09x').query, 'text=line1%0Aline2%09x');
  });

  test('a raw space in the query as malformed', () => {
    refused('/a?x=a b', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  test('a raw semicolon as a path parameter', () => {
    refused('/a;jsessionid=1/b', 'GH_ERR_REQUEST_PATH_PARAMETER');
    refused('/admin/..;/x', 'GH_ERR_REQUEST_PATH_PARAMETER');
  });

  test('an encoded semicolon as a path parameter', () => {
    refused('/a%3Bb', 'GH_ERR_REQUEST_PATH_PARAMETER');
    refused('/a%3bb', 'GH_ERR_REQUEST_PATH_PARAMETER');
  });

  test('a semicolon in the query is not a path parameter', () => {
    assert.equal(accepted('/a?x=1;y=2').query, 'x=1;y=2');
  });

  test('a double-dot segment at the root as path traversal', () => {
    refused('/..', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    refused('/../etc/passwd', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
  });

  test('a double-dot segment climbing above the root after descending as path traversal', () => {
    refused('/a/b/../../../c', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    refused('/a/./../..', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
  });

  test('an encoded double-dot segment climbing above the root as path traversal', () => {
    refused('/%2e%2e/admin', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    refused('/a/%2E%2e/.%2e/admin', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    refused('http://h/.%2E/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL', 'h');
  });

  test('an absolute-form target whose host differs from the Host header as a host mismatch', () => {
    refused('http://evil.example.com/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'api.example.com');
  });

  test('an absolute-form target whose port differs from the Host header as a host mismatch', () => {
    refused('http://h:8080/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h');
    refused('http://h/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h:8080');
    refused('http://h:8080/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h:8081');
  });

  test("an absolute-form target whose port is the other scheme's default as a host mismatch", () => {
    refused('http://h/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h:443');
    refused('https://h:80/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h');
  });

  test('an absolute-form target with an unparseable or empty Host header as a host mismatch', () => {
    refused('http://h/a', 'GH_ERR_REQUEST_HOST_MISMATCH', 'h h');
    refused('http://h/a', 'GH_ERR_REQUEST_HOST_MISMATCH', '');
  });

  test('details truncate the echoed input', () => {
    const detail = refused(`http://${'a'.repeat(5000)}/x`, 'GH_ERR_REQUEST_HOST_MISMATCH', 'h');
    assert.ok(detail.length < 250, detail);
    const malformed = refused('x'.repeat(5000), 'GH_ERR_REQUEST_MALFORMED_TARGET');
    assert.ok(malformed.length < 250, malformed);
  });
});

describe('canonicalize refuses what a backend may read differently', () => {
  test('an encoded "#" or "?" in any case, which a decoding backend reads as the end of the path', () => {
    for (const target of ['/a/%23', '/a/%3F', '/a/%3f/b', '/a/x%23y', '/%23?q=1'])
      refused(target, 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT');
  });

  test('segments made only of three or more dots, raw or encoded', () => {
    for (const target of ['/a/...', '/a/..../b', '/a/%2e%2e%2e', '/a/.%2E.', '/.../x'])
      refused(target, 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT');
  });

  test('characters that NFKC turns into "/" or "\\", encoded or raw', () => {
    refused('/a/%EF%BC%8F/b', 'GH_ERR_REQUEST_ENCODED_SLASH'); // U+FF0F FULLWIDTH SOLIDUS
    refused('/a/\uFF0F', 'GH_ERR_REQUEST_ENCODED_SLASH');
    refused('/a/%EF%BC%BC', 'GH_ERR_REQUEST_ENCODED_SLASH'); // U+FF3C FULLWIDTH REVERSE SOLIDUS
    refused('/a/%EF%B9%A8', 'GH_ERR_REQUEST_ENCODED_SLASH'); // U+FE68 SMALL REVERSE SOLIDUS
  });

  test('characters that NFKC turns into "?", "#", ".", ";" or "%"', () => {
    refused('/a/%EF%BC%9F', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'); // U+FF1F FULLWIDTH QUESTION MARK
    refused('/a/%EF%BC%83', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'); // U+FF03 FULLWIDTH NUMBER SIGN
    refused('/a/%EF%BC%8E%EF%BC%8E', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'); // U+FF0E twice: '..' after NFKC
    refused('/a/%E2%80%A5', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'); // U+2025 TWO DOT LEADER: '..'
    refused('/a/\u2026', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'); // U+2026 HORIZONTAL ELLIPSIS: '...'
    refused('/a/%EF%BC%9B', 'GH_ERR_REQUEST_PATH_PARAMETER'); // U+FF1B FULLWIDTH SEMICOLON
    refused('/a/%EF%BC%85', 'GH_ERR_REQUEST_DOUBLE_ENCODING'); // U+FF05 FULLWIDTH PERCENT SIGN
  });

  test('names the code point and what it becomes, and still accepts ordinary non-ASCII text', () => {
    assert.match(refused('/a/%EF%BC%8F', 'GH_ERR_REQUEST_ENCODED_SLASH'), /U\+FF0F.*"\/"/);
    assert.equal(
      accepted('/caf%C3%A9/%E6%97%A5%E6%9C%AC/%F0%9F%98%80').path,
      '/caf%C3%A9/%E6%97%A5%E6%9C%AC/%F0%9F%98%80',
    );
    assert.equal(accepted('/a/..b/b..').path, '/a/..b/b..');
  });
});

describe('comparableParam', () => {
  test('is the decoded value when NFKC leaves it alone', () => {
    assert.equal(comparableParam('acme'), 'acme');
    assert.equal(comparableParam('caf%C3%A9'), 'café');
  });

  test('is undefined for a value that NFKC changes, so it never equals a claim', () => {
    assert.equal(comparableParam('%EF%BD%81cme'), undefined); // U+FF41 FULLWIDTH a + 'cme' → 'acme' after NFKC
    assert.equal(comparableParam('%EF%AC%81le'), undefined); // U+FB01 LATIN SMALL LIGATURE FI
  });
});

describe('decodeSegment', () => {
  test('returns a segment without escapes unchanged', () => {
    assert.equal(decodeSegment('users'), 'users');
  });

  test('decodes reserved and UTF-8 escapes of a canonical segment', () => {
    assert.equal(decodeSegment('a%3Ab%20c'), 'a:b c');
    assert.equal(decodeSegment('caf%C3%A9'), 'café');
    assert.equal(decodeSegment('100%25'), '100%');
  });

  test('decodes every segment of a canonicalized path without throwing', () => {
    const path = accepted('/café/%3a/a b/100%25/%F0%9F%98%80').path;
    assert.deepEqual(path.split('/').slice(1).map(decodeSegment), ['café', ':', 'a b', '100%', '😀']);
  });
});

describe('segmentDepth', () => {
  test('counts the segments of a path', () => {
    assert.equal(segmentDepth('/'), 0);
    assert.equal(segmentDepth(''), 0);
    assert.equal(segmentDepth('/a'), 1);
    assert.equal(segmentDepth('/a/b'), 2);
  });

  test('ignores a trailing slash and repeated slashes', () => {
    assert.equal(segmentDepth('/a/b/'), 2);
    assert.equal(segmentDepth('//a//b//'), 2);
  });
});
