/**
 * The PostgreSQL the tests use (`GATEHOUSE_TEST_DATABASE_URL`, by default the local server) and a probe that says
 * why it cannot be reached (undefined when it answers `select 1`), retrying with back-off first (see probe.ts).
 * Without CI an absent PostgreSQL skips its suites with a notice; under CI (`CI` set) it fails them with
 * `POSTGRES_HOW_TO`.
 */
import pg from 'pg';
import { probeService, type ProbeOptions } from './probe.ts';

export const TEST_DATABASE_URL = process.env.GATEHOUSE_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** What to do when no PostgreSQL answers. */
export const POSTGRES_HOW_TO =
  'start one (.ci/run starts the local cluster when it can) or set GATEHOUSE_TEST_DATABASE_URL';

export function probePostgres(url: string = TEST_DATABASE_URL, options?: ProbeOptions): Promise<string | undefined> {
  return probeService(
    'PostgreSQL',
    async (timeoutMs) => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('select 1');
      } finally {
        await client.end().catch(() => {});
      }
    },
    options,
  );
}
