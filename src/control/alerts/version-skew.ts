/**
 * The gateway versions a control plane supports: the same major version, and a minor version equal to its own or
 * at most `minorsBehind` behind (as Kubernetes does with kubelets: never newer than the control plane). Patch
 * versions and pre-release tags do not matter. A version that is not `MAJOR.MINOR.PATCH` is unsupported.
 */

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;

export function parseVersion(version: string): { major: number; minor: number } | undefined {
  const m = VERSION.exec(version.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

export function isSupportedVersion(gatewayVersion: string, controlPlaneVersion: string, minorsBehind = 1): boolean {
  const g = parseVersion(gatewayVersion);
  const c = parseVersion(controlPlaneVersion);
  if (g === undefined || c === undefined) return false;
  return g.major === c.major && g.minor <= c.minor && c.minor - g.minor <= minorsBehind;
}
