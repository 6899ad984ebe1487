/**
 * The README and docs/ say what the program does, checked so that they cannot drift:
 * - every `gatehouse …` / `bin/gatehouse …` command in a fenced shell block of README.md and docs/*.md is a command
 *   of the CLI, and every flag it uses is one its `--help` names; every `npm run X` names a script of package.json;
 * - the README quickstart's fenced commands run, in order, through bash against a real control plane and the demo
 *   upstream (only addresses, the file's upstream port and the tokens printed along the way are substituted), and
 *   answer what the README says (the backend's echo of the JWT's claims, a 403, the admin API's JSON);
 * - quoted outputs of docs/operations.md (`/healthz`, `/readyz`, the exit codes) match the program.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ControlProcess, startControlPlane } from './control-helpers.ts';
import { onLines, REPO_ROOT, runCli } from './helpers.ts';

interface Block {
  file: string;
  /** The fence's info string (`sh`, `console`, …). */
  lang: string;
  text: string;
}

async function docs(): Promise<{ file: string; text: string }[]> {
  const names = (await readdir(join(REPO_ROOT, 'docs'))).filter((n) => n.endsWith('.md')).map((n) => `docs/${n}`);
  return Promise.all(
    ['README.md', ...names].map(async (file) => ({ file, text: await readFile(join(REPO_ROOT, file), 'utf8') })),
  );
}

function fencedBlocks(file: string, text: string): Block[] {
  const blocks: Block[] = [];
  for (const m of text.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```$/gm))
    blocks.push({ file, lang: m[2]!, text: m[3]!.replace(new RegExp(`^${m[1]}`, 'gm'), '') });
  return blocks;
}

/** The shell commands of a block: `$ ` prompts stripped (console blocks keep only prompted lines), `\` joined. */
function commandsOf(block: Block): string[] {
  const lines = block.text.replace(/\\\n\s*/g, ' ').split('\n');
  const prompted = block.lang === 'console';
  return (
    lines
      // A console block may show a mistake on purpose: a prompt whose answer is an error is not a command to check.
      .filter((l, i) => (prompted ? l.startsWith('$ ') && !lines[i + 1]?.startsWith('gatehouse: ') : true))
      .map((l) => (prompted ? l.slice(2) : l).trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
  );
}

/** `gatehouse`/`bin/gatehouse` invocations in a command line (split on && and |), comments removed. */
function gatehouseCalls(line: string): string[][] {
  const out: string[][] = [];
  for (const part of line.replace(/\s#.*$/, '').split(/&&|\|\|?|;/)) {
    const words = part.trim().split(/\s+/);
    if (words[0] === 'gatehouse' || words[0] === 'bin/gatehouse') out.push(words.slice(1));
  }
  return out;
}

describe('docs and README say what the program does', () => {
  it('every documented gatehouse command exists, and its help names every flag used', async () => {
    const uses = new Map<string, { flags: Set<string>; where: string }>();
    for (const { file, text } of await docs()) {
      for (const block of fencedBlocks(file, text)) {
        if (!['sh', 'bash', 'console', 'shell'].includes(block.lang)) continue;
        for (const line of commandsOf(block))
          for (const words of gatehouseCalls(line)) {
            const positional = words.filter((w) => !w.startsWith('-'));
            const command = positional.slice(0, 2).join(' ');
            if (!command || command.includes('…')) continue;
            const use = uses.get(command) ?? { flags: new Set<string>(), where: `${file}: ${line}` };
            for (const w of words) if (/^--?[a-z]/.test(w)) use.flags.add(w.split('=')[0]!);
            uses.set(command, use);
          }
      }
    }
    assert.ok(uses.size >= 10, `found ${uses.size} documented commands`);
    const problems: string[] = [];
    const check = async ([command, { flags, where }]: [string, { flags: Set<string>; where: string }]) => {
      // Two words (noun verb), or one word and an argument (`gateway run`, `demo` with a flag value…).
      let help = await runCli([...command.split(' '), '--help'], { timeoutMs: 30_000 });
      if (help.code !== 0) help = await runCli([command.split(' ')[0]!, '--help'], { timeoutMs: 30_000 });
      if (help.code !== 0) {
        problems.push(`${where}\n  "gatehouse ${command}" is not a command: ${help.stderr.trim()}`);
        return;
      }
      for (const flag of flags)
        if (!new RegExp(`(^|[\\s\\[(,/|])${flag.replace(/[-]/g, '\\-')}\\b`, 'm').test(help.stdout))
          problems.push(`${where}\n  "gatehouse ${command}" has no flag ${flag} in its --help`);
    };
    // A few at a time: each is a process start.
    const queue = [...uses];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) await check(next);
      }),
    );
    assert.deepEqual(problems.sort(), []);
  });

  it('every npm script the docs name exists', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    for (const { file, text } of await docs())
      for (const m of text.matchAll(/\bnpm run ([\w:-]+)/g))
        assert.ok(pkg.scripts[m[1]!], `${file}: npm run ${m[1]} is not a script of package.json`);
    assert.match(pkg.scripts.start!, /control start$/, 'npm start is the control plane');
    assert.match(pkg.scripts.demo!, /main\.ts demo$/, 'npm run demo is gatehouse demo');
  });

  describe('the README quickstart, run as written', () => {
    let cp: ControlProcess;
    let work: string;
    let stopUpstream: (() => Promise<void>) | undefined;
    before(async () => {
      cp = await startControlPlane();
      work = await mkdtemp(join(tmpdir(), 'gatehouse-docs-'));
    });
    after(async () => {
      await stopUpstream?.();
      await cp?.stop();
      await rm(work, { recursive: true, force: true });
    });

    it('runs steps 2 to 6 and gets the answers the README shows', async () => {
      const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
      const section = readme.slice(
        readme.indexOf('## Quickstart'),
        readme.indexOf('\n## ', readme.indexOf('## Quickstart') + 5),
      );
      assert.match(section, /three terminals/, 'the quickstart says how many terminals it needs');

      // Step 2, the backend: `bin/gatehouse demo upstream`, on a free port, trusting this cloud gateway.
      const step2 = /`(bin\/gatehouse demo upstream)`/.exec(section)?.[1];
      assert.ok(step2, 'step 2 names the backend command');
      const upstream = spawn('bash', ['-c', `exec ${step2} --port 0 --gateway ${cp.gatewayUrl}`], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      stopUpstream = async () => {
        if (upstream.exitCode === null) {
          const exited = new Promise((r) => upstream.once('exit', r));
          upstream.kill('SIGTERM');
          await exited;
        }
      };
      const upstreamPort = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the demo upstream did not start')), 30_000);
        onLines(upstream, (line) => {
          const port = /Demo upstream on http:\/\/127\.0\.0\.1:(\d+)/.exec(line)?.[1];
          if (port) {
            clearTimeout(timer);
            resolve(port);
          }
        });
      });
      const collections = join(work, 'collections.yaml');
      const example = await readFile(join(REPO_ROOT, 'examples/collections.yaml'), 'utf8');
      assert.ok(example.includes('http://127.0.0.1:9000/api'));
      await writeFile(
        collections,
        example.replace('http://127.0.0.1:9000/api', `http://127.0.0.1:${upstreamPort}/api`),
      );

      // Steps 3 to 6: every fenced command, in order, in one shell (as one terminal), with addresses substituted.
      const blocks = fencedBlocks('README.md', section).filter((b) => b.lang === 'sh');
      const lines = blocks.flatMap(commandsOf).filter((l) => !l.startsWith('export GATEHOUSE_URL='));
      assert.ok(lines.length >= 6, lines.join('\n'));
      const run = async (line: string, env: Record<string, string>) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const sh = spawn('bash', ['-c', line], {
            cwd: REPO_ROOT,
            env: { ...process.env, GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          sh.stdout.on('data', (d: Buffer) => (out += d));
          sh.stderr.on('data', (d: Buffer) => (out += d));
          sh.on('close', (code) => resolve({ code, out }));
        });
      const env: Record<string, string> = {};
      const answers: { line: string; out: string }[] = [];
      for (const original of lines) {
        let line = original
          .replaceAll('http://127.0.0.1:8081', cp.adminUrl)
          .replaceAll('http://127.0.0.1:8080', cp.gatewayUrl)
          .replaceAll('examples/collections.yaml', collections);
        if (/^export TOKEN=ghk_…/.test(line)) continue; // the token printed by `client create`, captured below
        const clientId = /\bcli_[A-Za-z0-9]+/.exec(answers.map((a) => a.out).join('\n'))?.[0];
        if (line.includes('cli_…') && clientId) line = line.replaceAll('cli_…', clientId);
        const r = await run(line, env);
        assert.equal(r.code, 0, `${original}\n${r.out}`);
        const token = /\b(ghk_[A-Za-z0-9]{38})\b/.exec(r.out)?.[1];
        if (/client create/.test(line) && token) env.TOKEN = token;
        answers.push({ line: original, out: r.out });
      }
      const answerOf = (pattern: RegExp) => answers.find((a) => pattern.test(a.line))?.out ?? '';
      assert.ok(env.TOKEN, 'client create printed a token');
      // The backend echoes the claims of the JWT it received; the key itself never reaches it.
      const call = answerOf(/^curl -H "Authorization: Bearer \$TOKEN" http:\/\/127\.0\.0\.1:8080/);
      assert.match(call, /"client_id"/, call);
      assert.ok(!call.includes(env.TOKEN), 'the API key does not reach the backend');
      assert.match(answerOf(/# 403/), /^HTTP\/1\.1 403 /m);
      assert.match(answerOf(/api\/v1\/workspaces\/default\/clients/), /"items"/);
    });

    it('docs/operations.md quotes /healthz and /readyz as the ops listener answers them', async () => {
      const ops = cp.output
        .map((l) => /"ops":"([^"]+)".*"gateway listening"/.exec(l)?.[1])
        .find((a) => a !== undefined);
      assert.ok(ops, 'the ops address is logged');
      const text = await readFile(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
      const healthz = /`GET \/healthz` → `(\d{3}) (\{[^`]*\})`/.exec(text);
      assert.ok(healthz, 'operations.md quotes /healthz');
      const h = await fetch(`http://${ops}/healthz`);
      assert.equal(h.status, Number(healthz[1]));
      assert.equal(await h.text(), healthz[2]);
      const readyz = /`GET \/readyz` → `(\d{3}) (\{[^`…]*)…\}\}`/.exec(text);
      assert.ok(readyz, 'operations.md quotes /readyz');
      const r = await fetch(`http://${ops}/readyz`);
      assert.equal(r.status, Number(readyz[1]));
      assert.ok((await r.text()).startsWith(readyz[2]!), readyz[2]);
    });
  });

  it('docs/operations.md gives the exit code the program uses for a port in use (2: test/port-in-use)', async () => {
    const text = await readFile(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    const exitCodes = /Exit codes: `0` success; `2` ([^`]*)`1`/.exec(text)?.[1] ?? '';
    assert.match(exitCodes, /port in use/, 'a port in use is listed under exit code 2');
  });
});
