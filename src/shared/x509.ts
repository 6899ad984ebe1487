/**
 * @peculiar/x509 over Node's WebCrypto, for what only it does here: making CSRs and (on the control plane) issuing
 * certificates. Loading it costs about a tenth of a second (tsyringe and its Reflect metadata polyfill included),
 * so an edge gateway that starts from its cache never loads it: `certificates.ts` reads certificates with
 * `node:crypto` and loads this module only to make a CSR.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export { x509 };
