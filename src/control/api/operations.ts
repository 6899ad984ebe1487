/** Every admin API operation, in the order the OpenAPI document lists them. */
import { alertOperations } from './alert-routes.ts';
import { analyticsOperations } from './analytics-routes.ts';
import { auditOperations } from './audit-routes.ts';
import { clientOperations } from './client-routes.ts';
import { collectionOperations } from './collection-routes.ts';
import { derivedCredentialOperations } from './derived-credential-routes.ts';
import { entityOperations } from './entity-routes.ts';
import { gatewayOperations } from './gateway-routes.ts';
import { openApiOperations } from './openapi-routes.ts';
import type { Operation } from './operation.ts';
import { promotionOperations } from './promotion-routes.ts';
import { releaseNotesOperations } from './release-notes-routes.ts';
import { roleOperations } from './role-routes.ts';
import { signingKeyOperations } from './signing-key-routes.ts';
import { snapshotOperations } from './snapshot-routes.ts';
import { telemetryOperations } from './telemetry-routes.ts';
import { userOperations } from './user-routes.ts';
import { workspaceOperations } from './workspace-routes.ts';

export const OPERATIONS: readonly Operation[] = [
  ...workspaceOperations,
  ...collectionOperations,
  ...promotionOperations,
  ...openApiOperations,
  ...entityOperations,
  ...roleOperations,
  ...clientOperations,
  ...derivedCredentialOperations,
  ...userOperations,
  ...snapshotOperations,
  ...signingKeyOperations,
  ...gatewayOperations,
  ...telemetryOperations,
  ...alertOperations,
  ...releaseNotesOperations,
  ...analyticsOperations,
  ...auditOperations,
];
