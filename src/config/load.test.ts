import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { printParseErrorCode } from 'jsonc-parser';
import { JSONC_ERRORS, MAX_JSON_DEPTH, scanJson, syntaxErrorAt } from './json-scan.ts';
import { ConfigError, loadGatewayFile, parseConfigText, parseGatewayFile } from './load.ts';
import { prng } from '../testing/prng.ts';

const KEY = 'ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB';
const base = {
  tokenExchange: { issuer: 'https://gw', audience: 'api' },
  collections: [
    {
      name: 'billing',
      basePath: '/billing',
      upstream: 'http://127.0.0.1:9000',
      project: 'p',
      environment: 'PROD',
      endpoints: [{ method: 'GET', path: '/orgs/{id}', permission: 'orgs:read' }],
    },
  ],
  roles: [{ name: 'reader', permissions: ['orgs:read'] }],
  clients: [
    { id: 'c1', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: `sha256:${'a'.repeat(64)}` }] },
  ],
};

/** The ConfigError message for `text` read as `file`. */
function errorOf(text: string, file: string): string {
  try {
    parseGatewayFile(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String((error as Error).stack ?? error));
    return error.message;
  }
  assert.fail('the config was accepted');
}

describe('reading a config file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-load-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a file above 32 MB before reading it, and points to the clients file', async () => {
    const file = join(dir, 'huge.yaml');
    const handle = await open(file, 'w');
    await handle.truncate(210 * 2 ** 20); // sparse: nothing to write, and never read
    await handle.close();
    await assert.rejects(loadGatewayFile(file), (error: Error) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(
        error.message,
        `${file}: the config file is 210 MB, above the 32 MB limit; put large client sets in clientsFile (NDJSON)`,
      );
      return true;
    });
  });

  it('refuses text above 32 MB that a caller read itself, before parsing it', () => {
    const text = `a: "${'x'.repeat(33 * 2 ** 20)}"\n`;
    assert.throws(
      () => parseConfigText(text, 'gw.yaml'),
      (error: Error) =>
        error instanceof ConfigError &&
        /^gw\.yaml: the config file is 33 MB, above the 32 MB limit/.test(error.message),
    );
    // Bytes count, not characters: 12M three-byte characters are 36 MB of UTF-8.
    assert.throws(
      () => parseConfigText(`a: "${'€'.repeat(12 * 2 ** 20)}"`, 'gw.json'),
      (error: Error) => error instanceof ConfigError && /is 36 MB, above the 32 MB limit/.test(error.message),
    );
  });

  it('refuses what is not a regular file, clearly', async () => {
    await assert.rejects(
      loadGatewayFile('/dev/zero'),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message === '/dev/zero: the config file is a character device, not a regular file',
    );
    await assert.rejects(
      loadGatewayFile(dir),
      (error: Error) =>
        error instanceof ConfigError && error.message === `${dir}: the config file is a directory, not a regular file`,
    );
    await assert.rejects(
      loadGatewayFile(join(dir, 'missing.yaml')),
      (error: Error) =>
        error instanceof ConfigError && /missing\.yaml: cannot read the config file \(ENOENT\)/.test(error.message),
    );
  });

  it('reads a valid file', async () => {
    const file = join(dir, 'gw.yaml');
    await writeFile(file, stringify(base));
    assert.equal((await loadGatewayFile(file)).clients[0]!.id, 'c1');
  });
});

describe('a YAML config file', () => {
  const yaml = stringify(base);

  it('refuses an alias to an anchor that is not set, with its line and column', () => {
    const text = yaml.replace('issuer: https://gw', 'issuer: *nope');
    assert.equal(
      errorOf(text, 'gw.yaml'),
      'gw.yaml: invalid YAML at line 2, column 11: the alias *nope names no anchor (&nope) set before it',
    );
    assert.match(
      errorOf(`${yaml}version: *later\nx: &later 1\n`, 'gw.yaml'),
      /^gw\.yaml: invalid YAML at line \d+, column 10: the alias \*later names no anchor/,
    );
  });

  it('refuses an alias bomb, and says why', () => {
    let bomb = 'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    let previous = 'a';
    for (const name of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) {
      bomb += `${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]\n`;
      previous = name;
    }
    const message = errorOf(bomb + yaml, 'gw.yaml');
    assert.match(
      message,
      /^gw\.yaml: invalid YAML: its aliases \(\*name\) expand to more than 1000 copies of anchored values \(a guard against alias bombs\)/,
    );
  });

  it('still reads anchors and aliases used sparingly', () => {
    const aliased = `${yaml.replace('environments:\n      - PROD', 'environments: &envs [PROD]')}legacyClients:\n  - { id: l1, role: reader, environments: *envs, projects: [p], email: a@b.example, keyHash: ${'b'.repeat(64)} }\n`;
    assert.deepEqual(parseGatewayFile(aliased, 'gw.yaml').legacyClients[0]!.environments, ['PROD']);
  });

  it('reports a syntax error without the text around it', () => {
    assert.equal(
      errorOf(`tokenExchange:\n  issuer: |${KEY}\n    x\n`, 'gw.yaml'),
      'gw.yaml: invalid YAML at line 2, column 12: Block scalar header includes extra characters',
    );
  });

  it('refuses unknown tags, which would otherwise be read as plain strings', () => {
    assert.equal(
      errorOf(yaml.replace('issuer: https://gw', 'issuer: !secret x'), 'gw.yaml'),
      'gw.yaml: invalid YAML at line 2, column 11: Unresolved tag: !secret',
    );
    assert.match(
      errorOf(yaml.replace('audience: api', 'audience: !<tag:example.com,2000:x> api'), 'gw.yaml'),
      /^gw\.yaml: invalid YAML at line 3, column 13: Unresolved tag/,
    );
    assert.match(
      errorOf(yaml.replace('issuer: https://gw', 'issuer: !!map [a]'), 'gw.yaml'),
      /^gw\.yaml: invalid YAML at line 2, column 11: /,
    );
  });
});

describe('a YAML file with an unclosed quote or flow collection', () => {
  // yaml notices these on the line after (at the end of the file here): the error names where they start.
  it('names the line and column where the unclosed construct starts, not the line after', () => {
    assert.equal(
      errorOf('a: 1\nb: "open\n', 'gw.yaml'),
      'gw.yaml: invalid YAML at line 2, column 4: the quoted string " that starts here is not closed (Missing closing "quote); close it with "',
    );
    assert.match(
      errorOf('server:\n  listen: {port: 8080\ncollections: []\n', 'gw.yaml'),
      /^gw\.yaml: invalid YAML at line 2, column 11: the flow map \{ that starts here is not closed .*; close it with \}$/,
    );
    assert.match(
      errorOf('x: [1, 2\n', 'gw.yaml'),
      /^gw\.yaml: invalid YAML at line 1, column 4: the flow sequence \[ that starts here is not closed/,
    );
  });

  it('keeps the position yaml gives for other errors (a duplicate key on its own line)', () => {
    assert.equal(
      errorOf('a: 1\na: 2\n', 'gw.yaml'),
      'gw.yaml: invalid YAML at line 2, column 1: Map keys must be unique',
    );
  });
});

describe('a JSON config file', () => {
  const json = JSON.stringify(base, null, 2);

  it('refuses duplicate keys, as YAML does, with the key path and the line', () => {
    assert.equal(
      errorOf(json.replace('"roles"', '"version": 1, "version": 2, "roles"'), 'gw.json'),
      'gw.json: invalid JSON at line 22, column 17: the key version appears twice',
    );
    const nested = json.replace('"id": "c1",', '"id": "c1", "role": "other",');
    assert.match(
      errorOf(nested, 'gw.json'),
      /^gw\.json: invalid JSON at line \d+, column \d+: the key clients\[0\]\.role appears twice$/,
    );
    assert.match(
      errorOf('{"tokenExchange": {"issuer": "a", "audience": "b", "\\u0069ssuer": "c"}}', 'gw.json'),
      /the key tokenExchange\.issuer appears twice/,
    );
    assert.deepEqual(parseConfigText('[{"a": 1, "b": {"a": 2}}, {"a": 3}]', 'x.json'), [
      { a: 1, b: { a: 2 } },
      { a: 3 },
    ]);
  });

  it('gives the line and column of every syntax error, and never quotes the text', () => {
    const cases: [string, RegExp][] = [
      [json.slice(0, 50), /^gw\.json: invalid JSON at line 3, column 28: unexpected end of the file$/],
      [json.replace('"https://gw"', KEY), /^gw\.json: invalid JSON at line 3, column 15: expected a value/],
      [
        json.replace('"https://gw"', `"${KEY}`).replace(/\n\s*"audience".*/, ''),
        /^gw\.json: invalid JSON at line 3, column \d+: /,
      ],
      [json.replace('"https://gw",', `"${KEY}"`), /^gw\.json: invalid JSON at line 4, column 5: expected "," or "}"$/],
      [
        `${json}\n{}`,
        /^gw\.json: invalid JSON at line 48, column 1: unexpected content after the end of the JSON value$/,
      ],
      ['', /^gw\.json: invalid JSON at line 1, column 1: unexpected end of the file$/],
      // An error inside a string is given at the string's opening quote; a line break that ends it, where it is.
      [
        `{"a": "${KEY}\u0001"}`,
        /^gw\.json: invalid JSON at line 1, column 7: a control character \(such as a tab\) inside the string that starts here: write it escaped$/,
      ],
      [
        `{"a": "\\x${KEY}"}`,
        /^gw\.json: invalid JSON at line 1, column 7: an invalid escape inside the string that starts here: /,
      ],
      [
        `{"a": "\\u12${KEY}"}`,
        /^gw\.json: invalid JSON at line 1, column 7: an invalid \\u escape inside the string that starts here: it needs 4 hex digits$/,
      ],
      [
        `{"a": "${KEY}\n}`,
        /^gw\.json: invalid JSON at line 1, column 50: a line break inside a string: close the string before it, or write it as \\n$/,
      ],
      [`{"a": 01}`, /^gw\.json: invalid JSON at line 1, column 8: expected "," or "}"$/],
      [
        `{"a": -${KEY}}`,
        /^gw\.json: invalid JSON at line 1, column 8: invalid number: a digit must follow the minus sign$/,
      ],
      [
        `{"a": 1.e5}`,
        /^gw\.json: invalid JSON at line 1, column 9: invalid number: digits must follow the decimal point$/,
      ],
      [`{"a": nul${KEY}}`, /^gw\.json: invalid JSON at line 1, column 10: expected null$/],
      [`{"a": true${KEY}}`, /^gw\.json: invalid JSON at line 1, column 11: expected "," or "}"$/],
      [`{"a": 1, // ${KEY}\n}`, /^gw\.json: invalid JSON at line 1, column 10: a comment, which JSON does not allow$/],
      [`{"a": 1,}`, /^gw\.json: invalid JSON at line 1, column 9: expected a property name in double quotes$/],
      [`[1, "a" "${KEY}`, /^gw\.json: invalid JSON at line 1, column 9: expected "," or "]"$/],
    ];
    for (const [text, expected] of cases) {
      const message = errorOf(text, 'gw.json');
      assert.match(message, expected, text);
      assert.ok(!message.includes('ghk_'), message);
    }
  });

  /** Every message `scanJson` gives for a syntax error: its own words, never the file's. */
  const SYNTAX_MESSAGES = new Set([
    'unexpected end of the file',
    'unexpected end of the file: a string is not closed',
    'expected a value (an object, array, string, number, true, false or null)',
    'expected a property name in double quotes',
    'expected ":" after a property name',
    'expected "," or "}"',
    'expected "," or "]"',
    'unexpected content after the end of the JSON value',
    'expected true',
    'expected false',
    'expected null',
    'a comment, which JSON does not allow',
    'invalid number',
    'invalid number: a digit must follow the minus sign',
    'invalid number: digits must follow the decimal point',
    'invalid number: digits must follow the exponent',
    'a control character (such as a tab) inside the string that starts here: write it escaped',
    'an invalid escape inside the string that starts here: a backslash must be followed by one of " \\ / b f n r t u',
    'an invalid \\u escape inside the string that starts here: it needs 4 hex digits',
    'a line break inside a string: close the string before it, or write it as \\n',
    `objects and arrays nested more than ${MAX_JSON_DEPTH} levels deep`,
    'syntax error',
  ]);
  /** Errors inside a string: jsonc-parser gives the string's start (or the line break or end of file that ends it), V8 the character. */
  const IN_STRING = /inside the string that starts here|a line break inside a string|a string is not closed/;

  it('finds a syntax error in each of 5,000 damaged documents JSON.parse refuses, where V8 does unless it is inside a string, and accepts the valid ones', () => {
    const random = prng(20261203);
    const pieces = [
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '"',
      '\\',
      ' ',
      '\n',
      '0',
      '-',
      '.',
      'e',
      't',
      'n',
      'x',
      '\u0001',
      '"k":',
      '1e5',
      'true',
      'null',
      '/',
      '\\u',
    ];
    let refused = 0;
    let asV8 = 0;
    let inString = 0;
    for (let i = 0; i < 5_000; i++) {
      let text = JSON.stringify(
        { a: [1, -2.5e3, 0.125, 'x\\y"z\u0001é', true, false, null, {}], b: { c: 'd', e: [] } },
        null,
        random() < 0.5 ? 2 : 0,
      );
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
        const at = Math.floor(random() * (text.length + 1));
        const cut = random() < 0.5 ? Math.floor(random() * 3) : 0;
        text = text.slice(0, at) + pieces[Math.floor(random() * pieces.length)] + text.slice(at + cut);
      }
      let valid = true;
      let position: string | undefined; // where V8 says the error is, when it says so
      try {
        JSON.parse(text);
      } catch (error) {
        valid = false;
        const at = /\(line (\d+) column (\d+)\)/.exec((error as Error).message);
        if (at) position = `line ${at[1]}, column ${at[2]}`;
      }
      let message: string | undefined;
      try {
        parseConfigText(text, 'gw.json');
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        message = error.message;
      }
      if (valid) {
        assert.ok(message === undefined || / appears twice$/.test(message), `${JSON.stringify(text)}: ${message}`);
        continue;
      }
      refused++;
      const at = /^gw\.json: invalid JSON at (line (\d+), column (\d+)): (.*)$/s.exec(message ?? '');
      assert.ok(at, `${JSON.stringify(text)}: ${message}`);
      const lines = text.split('\n');
      const [line, column] = [Number(at[2]), Number(at[3])];
      assert.ok(
        line <= lines.length && column <= lines[line - 1]!.length + 1,
        `outside the file: ${JSON.stringify(text)}: ${message}`,
      );
      assert.ok(SYNTAX_MESSAGES.has(at[4]!), `not one of scanJson's messages: ${message}`);
      if (position === undefined) continue;
      if (at[1] === position) {
        asV8++;
      } else {
        assert.match(at[4]!, IN_STRING, `${JSON.stringify(text)}: ${message}, V8: ${position}`);
        inString++;
      }
    }
    assert.ok(refused > 2_500, `only ${refused} damaged documents were invalid`);
    assert.ok(asV8 > 4 * inString, `${asV8} errors where V8 puts them, ${inString} elsewhere in a string`);
  });

  it('reports the first duplicate key or syntax error, whichever comes first', () => {
    assert.deepEqual(scanJson('{"a": 1, "a": 2, "b": x}'), { offset: 9, message: 'the key a appears twice' });
    assert.deepEqual(scanJson('{"a": x, "a": 2}'), {
      offset: 6,
      message: 'expected a value (an object, array, string, number, true, false or null)',
    });
    assert.equal(scanJson('{"a": 1, "a": 2}', false), undefined);
    assert.deepEqual(scanJson('[{"k": [0, {"a": {}, "a": []}]}]'), {
      offset: 21,
      message: 'the key [0].k[1].a appears twice',
    });
  });

  it(`refuses objects and arrays nested more than ${MAX_JSON_DEPTH} levels deep, rather than overflowing the stack`, () => {
    assert.equal(scanJson('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)), undefined);
    for (const text of ['['.repeat(100_000) + ']'.repeat(100_000), '{"a":'.repeat(100_000)]) {
      assert.throws(
        () => parseConfigText(text, 'gw.json'),
        (error: Error) =>
          error instanceof ConfigError &&
          error.message ===
            `gw.json: invalid JSON at line 1, column ${text.startsWith('[') ? MAX_JSON_DEPTH + 1 : MAX_JSON_DEPTH * 5 + 1}: objects and arrays nested more than ${MAX_JSON_DEPTH} levels deep`,
      );
    }
  });

  it('takes the position of a JSON.parse error it finds no cause of from V8, as a number alone', () => {
    const errorOfParse = (text: string) => {
      try {
        JSON.parse(text);
      } catch (error) {
        return error;
      }
      assert.fail(text);
    };
    assert.deepEqual(syntaxErrorAt(errorOfParse(`[1 "${KEY}"]`)), { offset: 3, message: 'syntax error' });
    assert.deepEqual(syntaxErrorAt(errorOfParse(KEY)), { offset: -1, message: 'syntax error' }); // V8 gives no position here
    assert.deepEqual(syntaxErrorAt('not an error'), { offset: -1, message: 'syntax error' });
  });

  it("names jsonc-parser's error codes as jsonc-parser does", () => {
    for (const [name, code] of Object.entries(JSONC_ERRORS)) assert.equal(printParseErrorCode(code), name);
  });

  it('reads a file with a byte order mark', () => {
    assert.equal(parseGatewayFile(`\uFEFF${json}`, 'gw.json').clients[0]!.id, 'c1');
  });
});
