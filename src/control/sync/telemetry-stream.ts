/**
 * One `Telemetry.Report` stream: registered like a Sync stream (a deleted gateway's is ended with them), checked
 * again once registered, and every batch is stored only while the gateway exists and the certificate is not
 * revoked. Each batch stored (or refused for good) is acknowledged by its sequence number; one the store could not
 * take ends the stream unacknowledged, and the gateway sends it again.
 */
import { type ServerDuplexStream, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { TelemetryAckMessage, TelemetryBatchMessage } from '../../config/sync-proto.ts';
import type { GatewayRecord } from '../store/store.ts';
import { TelemetryBatchError } from '../telemetry/ingest.ts';
import {
  type AuthenticatedGateway,
  denialTrailers,
  type GatewayAuthenticator,
  type SyncDenial,
} from './gateway-authentication.ts';
import type { SyncRegistry } from './registry.ts';

/** Where telemetry batches go (the control plane's telemetry service implements it). */
export interface TelemetryIngest {
  /** Stores one batch of one instance; a rejection leaves the batch unacknowledged (the gateway sends it again). */
  ingest(gateway: GatewayRecord, instanceId: string, batch: TelemetryBatchMessage): Promise<void>;
}

export interface TelemetryStreamDeps {
  authenticator: GatewayAuthenticator;
  registry: SyncRegistry;
  logger: Logger;
  /** Registers a store write that the server's close() waits for. */
  track: <T>(p: Promise<T>) => Promise<T>;
  /** Without it batches are acknowledged and dropped. */
  telemetry?: TelemetryIngest;
}

export function serveTelemetryStream(
  call: ServerDuplexStream<TelemetryBatchMessage, TelemetryAckMessage>,
  deps: TelemetryStreamDeps,
): void {
  const { authenticator, registry, logger, track } = deps;
  let auth: AuthenticatedGateway | undefined;
  let ended = false;
  let unregister: (() => void) | undefined;
  const stop = () => {
    ended = true;
    unregister?.();
    unregister = undefined;
  };
  const fail = (code: status, message: string, deleted = false) => {
    if (ended) return;
    stop();
    call.emit('error', { code, details: message, metadata: denialTrailers(deleted) });
  };
  const refuse = (denial: SyncDenial, fields: Record<string, unknown> = {}) => {
    logger.warn({ peer: call.getPeer(), ...fields, reason: denial.message }, 'refused a telemetry stream');
    fail(denial.code, denial.message, denial.deleted);
  };
  let chain: Promise<unknown> = track(
    authenticator.authenticate(call).then(async (result) => {
      if ('code' in result) return refuse(result);
      if (ended) return;
      unregister = registry.addTelemetry({
        gatewayId: result.gateway.id,
        end: (code, message, deleted) => fail(code, message, deleted),
      });
      // A deletion between authentication and registration found nothing to end: look again.
      const denial = await authenticator.revalidate(result);
      if (denial) return refuse(denial, { gateway: result.gateway.id });
      auth = result;
    }),
  ).catch((error: unknown) => {
    logger.error({ err: error }, 'telemetry stream failed');
    fail(status.INTERNAL, 'internal error');
  });
  call.on('data', (batch: TelemetryBatchMessage) => {
    chain = track(
      chain.then(async () => {
        if (ended || !auth) return;
        const { gateway } = auth;
        try {
          const denial = await authenticator.revalidate(auth);
          if (denial)
            return refuse(denial, { gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence });
          if (ended) return;
          await deps.telemetry?.ingest(gateway, batch.instanceId, batch);
        } catch (error) {
          if (error instanceof TelemetryBatchError) {
            // A batch that breaks the contract would fail again on every retry: refuse it for good (acknowledged,
            // so the gateway drops it) and say so, instead of wedging the stream.
            logger.warn(
              { gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence, reason: error.message },
              'refused a telemetry batch that breaks the contract; it is dropped',
            );
          } else {
            logger.error({ err: error, gateway: gateway.id }, 'storing a telemetry batch failed');
            return fail(
              status.UNAVAILABLE,
              'the control plane could not store the telemetry batch; send it again later',
            );
          }
        }
        if (!ended) call.write({ sequence: batch.sequence });
      }),
    );
  });
  call.on(
    'end',
    () =>
      void chain.then(() => {
        if (ended) return;
        stop();
        call.end();
      }),
  );
  call.on('error', stop);
  call.on('cancelled', stop);
  call.on('close', stop);
}
