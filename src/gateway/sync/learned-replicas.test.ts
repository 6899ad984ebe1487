import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { withLearnedReplicas } from '../../config/edge.ts';
import { LearnedReplicasFile, readLearnedReplicas } from './learned-replicas.ts';

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
  );
  return { logger, lines };
}

const A = { bootstrap: 'https://a.example:8443', sync: 'a.example:8444', telemetry: 'a.example:8444' };
const B = { bootstrap: 'https://b.example:8443', sync: 'b.example:8444', telemetry: 'b.example:8444' };

describe('learned control-plane replicas (replicas.json)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-replicas-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads none when the file does not exist, silently', async () => {
    const { logger, lines } = memoryLogger();
    assert.deepEqual(await readLearnedReplicas(join(dir, 'missing.json'), logger), []);
    assert.equal(lines.length, 0);
  });

  it('ignores a file that is not JSON or not valid, saying which file and why', async () => {
    const { logger, lines } = memoryLogger();
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"replicas": [');
    assert.deepEqual(await readLearnedReplicas(file, logger), []);
    await writeFile(file, JSON.stringify({ learnedAt: new Date().toISOString(), replicas: [{ sync: 'no port' }] }));
    assert.deepEqual(await readLearnedReplicas(file, logger), []);
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => l.file === file && String(l.msg).includes('gateway.json')));
    assert.match(String(lines[1]!.issues), /sync/);
  });

  it('writes what it is told atomically with mode 0644, once per change, and reads it back', async () => {
    const { logger, lines } = memoryLogger();
    const file = join(dir, 'replicas.json');
    const writer = new LearnedReplicasFile(file, [], logger);
    await writer.save([A, B]);
    const first = await readFile(file, 'utf8');
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    await writer.save([A, B]); // the same set: not written again
    assert.equal(await readFile(file, 'utf8'), first);
    assert.equal(lines.filter((l) => l.msg === 'saved the control-plane replicas for failover').length, 1);
    assert.deepEqual(await readLearnedReplicas(file, logger), [A, B]);
    await writer.save([B]);
    assert.deepEqual(await readLearnedReplicas(file, logger), [B]);
  });

  it('replaces the alternates of gateway.json, keeping the configured endpoint first', () => {
    const endpoints = { ...A, serverName: 'gatehouse-control-plane', alternates: [{ ...B, sync: 'old.example:8444' }] };
    assert.deepEqual(withLearnedReplicas(endpoints, [A, B]).alternates, [B]);
    assert.equal(withLearnedReplicas(endpoints, [A, B]).sync, A.sync);
    assert.equal(withLearnedReplicas(endpoints, []), endpoints, 'nothing learned: as written at bootstrap');
  });
});
