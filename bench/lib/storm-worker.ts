/**
 * Child of bench/failover.ts (the reconnect storm): runs a share of the edge gateway instances in one process, each
 * with the gateway's real sync client (`startSyncClient`: its own gRPC channel, TLS connection with its own client
 * certificate, Hello, heartbeats, ACKs; updates are ACKed without being applied, so the process measures the
 * channel, not the gateway's compile). Started with `fork`, driven over IPC:
 *
 *   parent → { type: 'start', instances: [{ id, certPem }], keyPem, caPem, endpoint, alternates }
 *   child  → { type: 'ready' }   once it listens for commands
 *   parent → { type: 'mark', id } remembers every client's connections and applied version now
 *   parent → { type: 'close' }   closes every client and exits
 *   child  → { type: 'status', total, connected, applied, reconnected, updated, onB, rssBytes } every 50 ms, where
 *            `applied`: clients that ACKed at least one version; `reconnected`/`updated`: clients whose stream was
 *            accepted again / that ACKed a newer version since the last mark (`mark`: its id).
 */
import pino from 'pino';
import { startSyncClient, type SyncClient } from '../../src/gateway/sync/sync-client.ts';

export interface StormStart {
  type: 'start';
  /** Instance ids and the certificate of each one's gateway (instances of one gateway share it). */
  instances: { id: string; certPem: string }[];
  keyPem: string;
  caPem: string;
  endpoint: string;
  /** Replica B: `onB` counts the instances connected to it. */
  b: string;
  alternates: { sync: string; telemetry: string }[];
}
export type StormCommand = StormStart | { type: 'mark'; id: number } | { type: 'close' };
export interface StormStatus {
  type: 'status';
  total: number;
  connected: number;
  applied: number;
  reconnected: number;
  updated: number;
  /** Instances connected to B. */
  onB: number;
  /** Instances that were told of B by A (the `Replicas` advertisement). */
  learned: number;
  /** Why the instances that are not connected are not (the start of `lastError`), and how many each. */
  waiting: Record<string, number>;
  rssBytes: number;
  /** The last mark taken. */
  mark: number;
}

const clients: SyncClient[] = [];
const applied: number[] = [];
const hashes: string[] = [];
const learned: boolean[] = [];
let markId = 0;
let b = '';
let marks: { connections: number; version: number }[] = [];
let timer: NodeJS.Timeout | undefined;

function report(): void {
  let connected = 0;
  let withVersion = 0;
  let reconnected = 0;
  let updated = 0;
  let onB = 0;
  const waiting: Record<string, number> = {};
  clients.forEach((c, i) => {
    const s = c.state();
    if (!s.connected) {
      const why = (s.lastError ?? 'connecting').slice(0, 60);
      waiting[why] = (waiting[why] ?? 0) + 1;
    }
    if (s.connected) connected++;
    if (s.connected && s.endpoint === b) onB++;
    if ((applied[i] ?? 0) > 0) withVersion++;
    const mark = marks[i];
    if (mark && s.connected && s.connections > mark.connections) reconnected++;
    if (mark && (applied[i] ?? 0) > mark.version) updated++;
  });
  const status: StormStatus = {
    type: 'status',
    total: clients.length,
    connected,
    applied: withVersion,
    reconnected,
    updated,
    onB,
    learned: learned.filter(Boolean).length,
    waiting,
    rssBytes: process.memoryUsage.rss(),
    mark: markId,
  };
  process.send?.(status);
}

process.on('message', (command: StormCommand) => {
  if (command.type === 'start') {
    const logger = pino({ level: 'silent' });
    b = command.b;
    for (const [i, gateway] of command.instances.entries()) {
      const pems = { caPem: command.caPem, certPem: gateway.certPem, keyPem: command.keyPem };
      clients.push(
        startSyncClient({
          endpoint: command.endpoint,
          alternates: command.alternates,
          serverName: 'gatehouse-control-plane',
          credentials: () => pems,
          logger,
          instanceId: `storm-${gateway.id}`,
          softwareVersion: '0.1.0',
          hostname: `storm-${i}`,
          heartbeatMs: 5000,
          applied: () => (applied[i] ? { version: applied[i], hash: hashes[i]! } : undefined),
          onReplicas: (replicas) => (learned[i] = replicas.some((r) => r.sync === b)),
          handle: async (update) => {
            const version = update.kind === 'snapshot' ? update.version : update.toVersion;
            applied[i] = version;
            hashes[i] = update.hash;
            return { ok: true, version, hash: update.hash };
          },
        }),
      );
    }
    timer = setInterval(report, 50);
  } else if (command.type === 'mark') {
    marks = clients.map((c, i) => ({ connections: c.state().connections, version: applied[i] ?? 0 }));
    markId = command.id;
    report();
  } else if (command.type === 'close') {
    clearInterval(timer);
    void Promise.all(clients.map((c) => c.close())).then(() => process.exit(0));
  }
});
process.send?.({ type: 'ready' });
