/**
 * The live streams of this control-plane process, per gateway: what `disconnectGateway` ends when a gateway is
 * deleted — its `ConfigSync.Sync` streams and its `Telemetry.Report` streams alike, so that a deleted gateway keeps
 * no channel open — and what the benchmark and the tests ask "does every connected instance serve version N yet?"
 * (Sync streams only). Durable instance state (last seen, applied version, last error) lives in the store; this is
 * only what is connected here and now.
 */

import type { ReplicaEndpoints } from '../../config/edge.ts';

/** A stream the registry can end: `deleted` tells the gateway that it was deleted (the `GATEWAY_STATUS_TRAILER` of config/sync-proto.ts). */
export interface EndableStream {
  readonly gatewayId: string;
  /** Ends the stream with this gRPC status. */
  end(code: number, message: string, deleted?: boolean): void;
}

/** One connected instance's Sync stream. */
export interface LiveStream extends EndableStream {
  readonly instanceId: string;
  /** The version the instance last ACKed (0 before its first ACK, or the version its Hello reported). */
  appliedVersion: number;
  /** Tells the instance the current set of control-plane replicas (high availability). */
  advertise?(replicas: readonly ReplicaEndpoints[]): void;
}

export class SyncRegistry {
  readonly #streams = new Map<string, Set<LiveStream>>();
  readonly #telemetry = new Map<string, Set<EndableStream>>();

  /** Registers a Sync stream; the returned function unregisters it. */
  add(stream: LiveStream): () => void {
    return register(this.#streams, stream);
  }

  /** Registers a Telemetry.Report stream (ended with the gateway's Sync streams); the returned function unregisters it. */
  addTelemetry(stream: EndableStream): () => void {
    return register(this.#telemetry, stream);
  }

  /** The live Sync streams of a gateway (one per connected instance, or more while an instance reconnects). */
  streams(gatewayId: string): LiveStream[] {
    return [...(this.#streams.get(gatewayId) ?? [])];
  }

  /** Instance id → the version it last ACKed, for every instance of the gateway connected here. */
  appliedVersions(gatewayId: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.#streams.get(gatewayId) ?? [])
      out.set(s.instanceId, Math.max(out.get(s.instanceId) ?? 0, s.appliedVersion));
    return out;
  }

  /** Every live Sync stream, of every gateway. */
  *all(): IterableIterator<LiveStream> {
    for (const set of this.#streams.values()) yield* set;
  }

  /** Ends every live stream of the gateway, Sync and Telemetry, with `code`; returns how many. */
  disconnect(gatewayId: string, code: number, message: string, deleted = false): number {
    const streams = [...this.streams(gatewayId), ...(this.#telemetry.get(gatewayId) ?? [])];
    for (const s of streams) s.end(code, message, deleted);
    return streams.length;
  }

  /** Ends every live stream (shutdown). */
  disconnectAll(code: number, message: string): void {
    for (const gatewayId of new Set([...this.#streams.keys(), ...this.#telemetry.keys()]))
      this.disconnect(gatewayId, code, message);
  }

  /** Live Sync streams. */
  get size(): number {
    let n = 0;
    for (const set of this.#streams.values()) n += set.size;
    return n;
  }
}

function register<T extends EndableStream>(map: Map<string, Set<T>>, stream: T): () => void {
  let set = map.get(stream.gatewayId);
  if (!set) map.set(stream.gatewayId, (set = new Set()));
  set.add(stream);
  return () => {
    set.delete(stream);
    if (set.size === 0 && map.get(stream.gatewayId) === set) map.delete(stream.gatewayId);
  };
}
