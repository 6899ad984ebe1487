/**
 * Edge gateways as the control plane manages them: one-time registration tokens inside install commands, the
 * gateway as the admin API shows it (instances online, their versions, "update available"), and renaming, which
 * follows the collections deployed to the gateway (their deployment target names it).
 *
 * A registration token is `ghr_` + 32 base62 characters (≈190 random bits), stored only as its SHA-256, valid for
 * `REGISTRATION_TOKEN_TTL_MS` and usable once. Issuing one deletes the gateway's other unused tokens, so the newest
 * install command is the only one that works.
 */
import { createHash, randomBytes } from 'node:crypto';
import { REGISTRATION_TOKEN_TTL_MS } from '../config/edge.ts';
import type { EdgeContext } from './api/operation.ts';
import { nowIso } from './ids.ts';
import type { CollectionRecord, GatewayInstanceRecord, GatewayRecord, StoreOps } from './store/store.ts';

/** The image the install commands run (deploy/Dockerfile builds it). */
export const DOCKER_IMAGE = 'gatehouse/gatehouse';
/**
 * Where the config directory lives inside the container (a named volume): the image's default
 * (`GATEHOUSE_CONFIG_DIR`, src/gateway/sync/config-dir.ts).
 */
export const CONTAINER_CONFIG_DIR = '/etc/edge-gateway';
/** The Helm chart, relative to a checkout of Gatehouse. */
export const HELM_CHART = 'deploy/helm/gatehouse';
/** The gatehouse command in printed commands: a checkout's own (run them from its root; with gatehouse on the PATH, `gatehouse` alone). */
export const GATEHOUSE_COMMAND = 'bin/gatehouse';
/**
 * The ports an edge gateway on the control plane's machine listens on: not the cloud gateway's 8080 nor the
 * control plane's ops 9090 (both of `npm start`).
 */
export const LOCAL_EDGE_PORTS = { api: 8090, ops: 9091 } as const;
/** An instance is online when its stream is connected and it was heard from this recently. */
export const ONLINE_WINDOW_MS = 30_000;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TOKEN_RANDOM_LENGTH = 32;

/** What install commands need of the edge context. */
export type InstallContext = Pick<EdgeContext, 'caPin' | 'endpoints' | 'softwareVersion'>;

/** A new registration token and its SHA-256 (hex): show the token once, store only the hash. */
export function generateRegistrationToken(): { token: string; hash: string } {
  let random = '';
  while (random.length < TOKEN_RANDOM_LENGTH) {
    for (const byte of randomBytes(40)) {
      if (byte >= 248) continue; // 248 = 4 × 62: keeps the digits unbiased
      random += ALPHABET[byte % 62];
      if (random.length === TOKEN_RANDOM_LENGTH) break;
    }
  }
  const token = `ghr_${random}`;
  return { token, hash: hashRegistrationToken(token) };
}

export function hashRegistrationToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface InstallCommand {
  /** The one-time registration token (also inside the commands). Shown this once. */
  token: string;
  expiresAt: string;
  caPin: string;
  bootstrapUrl: string;
  /** For the gateway's install method: Docker (bootstrap into a named volume, then run) or Helm (bootstrap, then install the chart). */
  command: string;
  /** The plain CLI, no container: bootstrap into the default config directory, then run, from a checkout of Gatehouse. */
  localCommand: string;
}

/**
 * Whether the control plane advertises a loopback address: then only processes on its own machine reach it — a
 * container only with the host's network (`--network host`), and an edge gateway there must keep off its ports.
 */
export function isLoopbackEndpoint(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Issues a fresh registration token for the gateway (deleting its unused ones) and the commands that carry it. */
export async function issueInstallCommand(
  store: StoreOps,
  gateway: GatewayRecord,
  edge: InstallContext,
  now: number,
): Promise<InstallCommand> {
  const { token, hash } = generateRegistrationToken();
  const expiresAt = nowIso(now + REGISTRATION_TOKEN_TTL_MS);
  await store.deleteRegistrationTokens(gateway.id);
  await store.insertRegistrationToken({ hash, gatewayId: gateway.id, createdAt: nowIso(now), expiresAt });
  const bootstrapUrl = edge.endpoints.bootstrap;
  const local = isLoopbackEndpoint(bootstrapUrl);
  const credentials = ['gateway', 'bootstrap', '-t', token, '--ca-pin', edge.caPin, '--url', bootstrapUrl];
  const bootstrap = (mode: 'standalone' | 'helm', dir?: string) => [...credentials, ...(dir ? ['-o', dir] : []), mode];
  // Helm: the values file holds the key, so it goes to the home directory, not into the checkout (a git work tree).
  const helmDir = `$HOME/gatehouse-${gateway.name}`;
  const command =
    gateway.installMethod === 'docker'
      ? [
          shell([
            'docker',
            'run',
            '--rm',
            ...(local ? ['--network', 'host'] : []),
            ...volume(gateway),
            image(edge.softwareVersion),
            ...bootstrap('standalone', CONTAINER_CONFIG_DIR),
          ]),
          dockerRun(gateway, edge.softwareVersion, local),
        ].join(' && ')
      : [
          `${shell([GATEHOUSE_COMMAND, ...credentials, '-o'])} "${helmDir}" helm`,
          `${shell(['helm', 'install', helmRelease(gateway.name), HELM_CHART, '-f'])} "${helmDir}/values.yaml"`,
        ].join(' && ');
  const run = [GATEHOUSE_COMMAND, 'gateway', 'run'];
  return {
    token,
    expiresAt,
    caPin: edge.caPin,
    bootstrapUrl,
    command,
    localCommand: [
      shell([GATEHOUSE_COMMAND, ...bootstrap('standalone')]),
      shell(local ? [...run, '--port', String(LOCAL_EDGE_PORTS.api), '--ops-port', String(LOCAL_EDGE_PORTS.ops)] : run),
    ].join(' && '),
  };
}

/** The command that moves a gateway's instances to `version`, for its install method. */
export function updateCommand(gateway: GatewayRecord, version: string, local = false): string {
  if (gateway.installMethod === 'helm')
    return shell([
      'helm',
      'upgrade',
      helmRelease(gateway.name),
      HELM_CHART,
      '--reuse-values',
      '--set',
      `image.tag=${version}`,
    ]);
  const container = `gatehouse-${gateway.name}`;
  return [
    shell(['docker', 'pull', image(version)]),
    shell(['docker', 'rm', '-f', container]),
    dockerRun(gateway, version, local),
  ].join(' && ');
}

/**
 * The long-running container: the config directory in a named volume, restarted with the machine. A control plane
 * on loopback is reachable from a container only on the host's network: then the gateway shares the host's ports
 * and keeps off the control plane's (8090, ops 9091, on loopback). Otherwise the container's 8080 is published as the
 * host's 8090, which does not clash with a cloud gateway on the same machine; the image listens on 0.0.0.0 inside.
 */
function dockerRun(gateway: GatewayRecord, version: string, local: boolean): string {
  const run = ['gateway', 'run', '--config', CONTAINER_CONFIG_DIR];
  return shell([
    'docker',
    'run',
    '-d',
    '--name',
    `gatehouse-${gateway.name}`,
    '--restart',
    'unless-stopped',
    ...volume(gateway),
    ...(local ? ['--network', 'host'] : ['-p', `${LOCAL_EDGE_PORTS.api}:8080`]),
    image(version),
    ...run,
    ...(local
      ? ['--host', '127.0.0.1', '--port', String(LOCAL_EDGE_PORTS.api), '--ops-port', String(LOCAL_EDGE_PORTS.ops)]
      : ['--host', '0.0.0.0']),
  ]);
}

function volume(gateway: GatewayRecord): string[] {
  return ['-v', `gatehouse-${gateway.name}:${CONTAINER_CONFIG_DIR}`];
}

function image(version: string): string {
  return `${DOCKER_IMAGE}:${version}`;
}

/** A Helm release name (DNS-1123 label, at most 53 characters) for the gateway: `gatehouse-<name>` in lower case. */
export function helmRelease(name: string): string {
  const label = `gatehouse-${name}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 53)
    .replace(/-+$/, '');
  return label;
}

/** Joins words into a POSIX shell command line, quoting only what needs it (e.g. `[::1]` in a URL). */
export function shell(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** Orders dotted versions numerically (`0.10.0` > `0.9.1`); a pre-release (`1.0.0-rc.1`) sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core = '', pre] = v.replace(/^v/, '').split('-', 2);
    return { core: core.split('.').map((n) => Number.parseInt(n, 10) || 0), pre };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.core.length, y.core.length); i++) {
    const d = (x.core[i] ?? 0) - (y.core[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export function isOnline(instance: GatewayInstanceRecord, now: number): boolean {
  return instance.connected && now - Date.parse(instance.lastSeenAt) <= ONLINE_WINDOW_MS;
}

/**
 * Where the release notes are: CHANGELOG.md as published with the docs (as docs/errors.md is at
 * `https://gatehouse.dev/docs/errors`). Each release's heading carries the anchor `v<version>`.
 */
export const CHANGELOG_URL = 'https://gatehouse.dev/changelog';

/** The changelog section of a version (`updateAvailable.releaseNotes`). */
export function releaseNotesUrl(version: string): string {
  return `${CHANGELOG_URL}#v${version}`;
}

/**
 * How long a disconnected instance counts as serving from its cached snapshot (fallback mode) rather than being
 * gone: an edge gateway keeps serving its last good configuration while cut off, and nothing tells the control
 * plane it stopped.
 */
export const FALLBACK_WINDOW_MS = 24 * 3600_000;

/** Online: an instance is connected; fallback: none is, but one was seen within FALLBACK_WINDOW_MS; else offline. */
export function gatewayStatus(instances: readonly { online: boolean; fallback: boolean }[]) {
  if (instances.some((i) => i.online)) return 'online' as const;
  return instances.some((i) => i.fallback) ? ('fallback' as const) : ('offline' as const);
}

/** A gateway as the admin API shows it. */
export function describeGateway(
  gateway: GatewayRecord,
  instances: readonly GatewayInstanceRecord[],
  edge: Pick<EdgeContext, 'softwareVersion'> & Partial<Pick<EdgeContext, 'endpoints'>>,
  now: number,
  extra: {
    certificateExpiresAt?: string;
    /** The newest snapshot version published to the gateway's scope (0 or absent: none yet). */
    latestConfigVersion?: number;
  } = {},
) {
  const latest = extra.latestConfigVersion ?? 0;
  const rows = instances.map((i) => ({
    instanceId: i.instanceId,
    ...(i.hostname !== undefined ? { hostname: i.hostname } : {}),
    online: isOnline(i, now),
    fallback: !isOnline(i, now) && now - Date.parse(i.lastSeenAt) <= FALLBACK_WINDOW_MS,
    softwareVersion: i.softwareVersion,
    appliedVersion: i.appliedVersion,
    ...(i.nackedVersion !== undefined ? { nackedVersion: i.nackedVersion } : {}),
    ...(i.lastError !== undefined ? { lastError: i.lastError } : {}),
    firstSeenAt: i.firstSeenAt,
    lastSeenAt: i.lastSeenAt,
    ...(i.lastSyncedAt !== undefined ? { lastSyncedAt: i.lastSyncedAt } : {}),
    configBehindBy: Math.max(0, latest - i.appliedVersion),
  }));
  const online = rows.filter((r) => r.online);
  const versions = [...new Set(online.map((r) => r.softwareVersion))].sort(compareVersions);
  const behind = versions.filter((v) => compareVersions(v, edge.softwareVersion) < 0);
  const lastSyncedAt = instances
    .map((i) => i.lastSyncedAt)
    .filter((t) => t !== undefined)
    .sort()
    .at(-1);
  const configVersion = Math.max(0, ...online.map((r) => r.appliedVersion));
  // In sync when every online instance serves the newest snapshot; behind by the laggard's distance. Without an
  // online instance (or a snapshot) nothing can be said: what the offline ones ran is in their instance rows.
  const lowest = Math.min(...online.map((r) => r.appliedVersion));
  const configSync =
    latest === 0 || online.length === 0
      ? { state: 'unknown' as const, latestVersion: latest, behindBy: 0 }
      : lowest >= latest
        ? { state: 'in_sync' as const, latestVersion: latest, behindBy: 0 }
        : { state: 'behind' as const, latestVersion: latest, behindBy: latest - lowest };
  const loopback = edge.endpoints !== undefined && isLoopbackEndpoint(edge.endpoints.bootstrap);
  return {
    id: gateway.id,
    name: gateway.name,
    environment: gateway.environment,
    installMethod: gateway.installMethod,
    status: gatewayStatus(rows),
    instancesOnline: online.length,
    instancesTotal: rows.length,
    versions,
    configVersion,
    configSync,
    ...(lastSyncedAt !== undefined ? { lastSyncedAt } : {}),
    ...(extra.certificateExpiresAt !== undefined ? { certificateExpiresAt: extra.certificateExpiresAt } : {}),
    ...(behind.length > 0
      ? {
          updateAvailable: {
            version: edge.softwareVersion,
            command: updateCommand(gateway, edge.softwareVersion, loopback),
            commands: {
              docker: updateCommand({ ...gateway, installMethod: 'docker' }, edge.softwareVersion, loopback),
              helm: updateCommand({ ...gateway, installMethod: 'helm' }, edge.softwareVersion, loopback),
            },
            releaseNotes: releaseNotesUrl(edge.softwareVersion),
            releaseNotesPath: `/api/v1/release-notes?since=${encodeURIComponent(behind[0]!)}`,
          },
        }
      : {}),
    instances: rows,
    createdAt: gateway.createdAt,
    updatedAt: gateway.updatedAt,
  };
}

/**
 * Renames a gateway inside a transaction, and makes the collections deployed to it follow: a draft that targets the
 * old name is edited to target the new one, and a published version that does gets a new version with only the
 * target changed (published versions are history and are never rewritten; a rollback to an older version targets a
 * name that no longer exists and is refused). Returns the names of the collections that were retargeted.
 */
export async function renameGateway(
  tx: StoreOps,
  gateway: GatewayRecord,
  name: string,
  by: string,
  now: number,
): Promise<{ gateway: GatewayRecord; retargeted: string[] }> {
  if (name === gateway.name) return { gateway, retargeted: [] };
  const at = nowIso(now);
  const renamed: GatewayRecord = { ...gateway, name, updatedAt: at };
  await tx.updateGateway(renamed);
  const targets = (c: { target: CollectionRecord['target'] }) =>
    c.target.type === 'edge' && c.target.gateway === gateway.name;
  const retarget = <T extends { target: CollectionRecord['target'] }>(spec: T): T => ({
    ...spec,
    target: { type: 'edge' as const, gateway: name },
  });
  const retargeted: string[] = [];
  for (const c of await tx.listCollections(gateway.workspaceId, { environment: gateway.environment })) {
    const versions = c.publishedVersion !== undefined ? await tx.listCollectionVersions(c.id) : [];
    const published = versions.find((v) => v.version === c.publishedVersion);
    if (!targets(c.spec) && !(published && targets(published.spec))) continue;
    let next: CollectionRecord = { ...c, revision: c.revision + 1, updatedAt: at };
    if (targets(c.spec)) next = { ...next, spec: retarget(c.spec) };
    if (published && targets(published.spec)) {
      const version = (versions[0]?.version ?? 0) + 1;
      await tx.insertCollectionVersion({
        collectionId: c.id,
        version,
        spec: retarget(published.spec),
        publishedAt: at,
        publishedBy: by,
      });
      next = { ...next, publishedVersion: version };
    }
    await tx.updateCollection(next, c.revision);
    retargeted.push(c.name);
  }
  return { gateway: renamed, retargeted };
}
