/**
 * The control-plane replicas an edge gateway learns over the sync stream (`Replicas`), kept in DIR/replicas.json
 * (`LearnedReplicasSchema`) so that a restarted gateway fails over to the replicas that were up when it last heard,
 * not only to those written at bootstrap. Written atomically (src/shared/atomic-file.ts) with gateway.json's mode;
 * holds no secret (addresses only).
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { LearnedReplicasSchema, type ReplicaEndpoints } from '../../config/edge.ts';
import { formatIssues } from '../../config/schema.ts';
import { writeFileAtomic } from '../../shared/atomic-file.ts';

/** Mode of replicas.json: gateway.json's. */
export const LEARNED_REPLICAS_MODE = 0o644;

/**
 * The replicas in `file`; none when it does not exist. A file that cannot be read or is invalid is reported and
 * ignored: the endpoints of gateway.json still work, and the next advertisement rewrites it.
 */
export async function readLearnedReplicas(file: string, logger: Logger): Promise<ReplicaEndpoints[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      logger.warn({ file, code }, 'cannot read the learned control-plane replicas; using those of gateway.json');
    return [];
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    logger.warn(
      { file, error: (error as Error).message },
      'the learned control-plane replicas are not valid JSON; using those of gateway.json until the control plane tells them again',
    );
    return [];
  }
  const parsed = LearnedReplicasSchema.safeParse(json);
  if (!parsed.success) {
    logger.warn(
      { file, issues: formatIssues(parsed.error) },
      'the learned control-plane replicas are invalid; using those of gateway.json until the control plane tells them again',
    );
    return [];
  }
  return parsed.data.replicas;
}

/** Writes what the control plane advertises, one write at a time, and only when the set changed. */
export class LearnedReplicasFile {
  readonly #file: string;
  readonly #logger: Logger;
  #written: string;
  #queue: Promise<void> = Promise.resolve();

  /** `current`: what the file holds now (as read at start-up). */
  constructor(file: string, current: readonly ReplicaEndpoints[], logger: Logger) {
    this.#file = file;
    this.#logger = logger;
    this.#written = key(current);
  }

  save(replicas: readonly ReplicaEndpoints[], now = new Date()): Promise<void> {
    const next = key(replicas);
    if (next === this.#written) return this.#queue;
    this.#written = next;
    const content = `${JSON.stringify({ learnedAt: now.toISOString(), replicas }, null, 2)}\n`;
    this.#queue = this.#queue.then(() =>
      writeFileAtomic(this.#file, content, { mode: LEARNED_REPLICAS_MODE }).then(
        () =>
          this.#logger.info(
            { replicas: replicas.map((r) => r.sync), file: this.#file },
            'saved the control-plane replicas for failover',
          ),
        (err: unknown) =>
          this.#logger.warn(
            { err, file: this.#file },
            'cannot save the control-plane replicas; failover still uses them until a restart',
          ),
      ),
    );
    return this.#queue;
  }

  /** Resolves once the writes started so far are done. */
  settled(): Promise<void> {
    return this.#queue;
  }
}

function key(replicas: readonly ReplicaEndpoints[]): string {
  return JSON.stringify(replicas.map((r) => [r.bootstrap, r.sync, r.telemetry]));
}
