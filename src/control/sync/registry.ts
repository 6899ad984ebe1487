/**
 * The live Sync streams of this control-plane process, per gateway: what `disconnectGateway` ends when a gateway
 * is deleted, and what the benchmark and the tests ask "does every connected instance serve version N yet?".
 * Durable instance state (last seen, applied version, last error) lives in the store; this is only what is
 * connected here and now.
 */

/** One connected instance's stream. */
export interface LiveStream {
  readonly gatewayId: string;
  readonly instanceId: string;
  /** The version the instance last ACKed (0 before its first ACK, or the version its Hello reported). */
  appliedVersion: number;
  /** Ends the stream with this gRPC status; `deleted` tells the gateway that it was deleted (the `GATEWAY_STATUS_TRAILER` of config/sync-proto.ts). */
  end(code: number, message: string, deleted?: boolean): void;
}

export class SyncRegistry {
  readonly #streams = new Map<string, Set<LiveStream>>();

  add(stream: LiveStream): () => void {
    let set = this.#streams.get(stream.gatewayId);
    if (!set) this.#streams.set(stream.gatewayId, (set = new Set()));
    set.add(stream);
    return () => {
      set.delete(stream);
      if (set.size === 0 && this.#streams.get(stream.gatewayId) === set) this.#streams.delete(stream.gatewayId);
    };
  }

  /** The live streams of a gateway (one per connected instance, or more while an instance reconnects). */
  streams(gatewayId: string): LiveStream[] {
    return [...(this.#streams.get(gatewayId) ?? [])];
  }

  /** Instance id → the version it last ACKed, for every instance of the gateway connected here. */
  appliedVersions(gatewayId: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.#streams.get(gatewayId) ?? []) out.set(s.instanceId, Math.max(out.get(s.instanceId) ?? 0, s.appliedVersion));
    return out;
  }

  /** Ends every live stream of the gateway with `code`; returns how many. */
  disconnect(gatewayId: string, code: number, message: string, deleted = false): number {
    const streams = this.streams(gatewayId);
    for (const s of streams) s.end(code, message, deleted);
    return streams.length;
  }

  /** Ends every live stream (shutdown). */
  disconnectAll(code: number, message: string): void {
    for (const gatewayId of [...this.#streams.keys()]) this.disconnect(gatewayId, code, message);
  }

  get size(): number {
    let n = 0;
    for (const set of this.#streams.values()) n += set.size;
    return n;
  }
}
