/**
 * An edge gateway's TLS files as `gateway bootstrap` would leave them, without the bootstrap: a key and CSR made
 * here, signed by the control plane's CA, the certificate recorded in the store (so the sync server accepts it), and
 * `tls/ca.pem`, `tls/gateway.crt`, `tls/gateway.key` (mode 0600) written under `dir`. For tests and benchmarks that
 * start many edge gateways against a real sync server.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CertificateAuthority } from '../control/pki/ca.ts';
import type { Store } from '../control/store/store.ts';
import { createKeyAndCsr } from '../shared/certificates.ts';

export async function writeGatewayTls(
  dir: string,
  ca: CertificateAuthority,
  store: Pick<Store, 'insertGatewayCertificate'>,
  scope: { gatewayId: string; workspaceId: string; environment: string },
): Promise<void> {
  const { keyPem, csrPem } = await createKeyAndCsr(`gateway ${scope.gatewayId}`);
  const issued = await ca.signGatewayCsr(csrPem, scope, 3600_000);
  await store.insertGatewayCertificate({
    serial: issued.serial,
    gatewayId: scope.gatewayId,
    notBefore: issued.notBefore.toISOString(),
    notAfter: issued.notAfter.toISOString(),
  });
  await mkdir(join(dir, 'tls'), { recursive: true });
  await writeFile(join(dir, 'tls', 'ca.pem'), ca.certPem);
  await writeFile(join(dir, 'tls', 'gateway.crt'), issued.certPem);
  await writeFile(join(dir, 'tls', 'gateway.key'), keyPem, { mode: 0o600 });
}
