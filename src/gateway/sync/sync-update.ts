/**
 * One update from the control plane, checked before it is applied: a full snapshot must pass the schema; a delta
 * must name the versions its message names and apply to the snapshot in force; the result must carry the version
 * of the message and hash to the hash the control plane sent. What fails is NACKed with the reason.
 */
import { formatIssues, type Snapshot } from '../../config/schema.ts';
import { applyDelta, SnapshotDeltaError, SnapshotDeltaSchema } from '../../config/snapshot-delta.ts';
import { snapshotHash } from '../../config/snapshot-encoding.ts';
import { parseSnapshot } from '../../config/snapshot-parse.ts';
import type { SyncUpdate } from './sync-client.ts';

/** The snapshot an update brings, or why it is refused (`resync`: ask for a full snapshot). */
export type DecodedUpdate =
  { ok: true; snapshot: Snapshot; hash: string } | { ok: false; error: string; resync?: boolean };

/** The version an update brings the gateway to. */
export function updateVersion(update: SyncUpdate): number {
  return update.kind === 'snapshot' ? update.version : update.toVersion;
}

/** Decodes and checks `update`; a delta applies to `inForce`, the snapshot in force (if any). */
export function decodeUpdate(update: SyncUpdate, inForce: Snapshot | undefined): DecodedUpdate {
  const version = updateVersion(update);
  const refuse = (error: string, resync = false): DecodedUpdate => ({ ok: false, error, resync });
  let snapshot: Snapshot;
  try {
    const json = JSON.parse(update.body.toString('utf8')) as unknown;
    if (update.kind === 'snapshot') {
      const parsed = parseSnapshot(json);
      if (!parsed.success) return refuse(`the snapshot is invalid:\n${formatIssues(parsed.error)}`);
      snapshot = parsed.data;
    } else {
      const parsed = SnapshotDeltaSchema.safeParse(json);
      if (!parsed.success) return refuse(`the delta is invalid:\n${formatIssues(parsed.error)}`);
      if (parsed.data.fromVersion !== update.fromVersion || parsed.data.toVersion !== update.toVersion)
        return refuse('the delta body names other versions than its message');
      if (!inForce) return refuse('received a delta, but no snapshot is in force', true);
      snapshot = applyDelta(inForce, parsed.data);
    }
  } catch (error) {
    if (error instanceof SnapshotDeltaError) return refuse(error.message, error.reason === 'version-mismatch');
    return refuse(`the ${update.kind} is not valid JSON: ${(error as Error).message}`);
  }
  if (snapshot.version !== version)
    return refuse(`the snapshot says version ${String(snapshot.version)}, the message ${version}`);
  const hash = snapshotHash(snapshot);
  if (hash !== update.hash)
    return refuse(
      `content hash mismatch: the control plane sent ${update.hash}, the snapshot received hashes to ${hash}`,
    );
  return { ok: true, snapshot, hash };
}
