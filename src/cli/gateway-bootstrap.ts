import { access, constants } from 'node:fs/promises';
import { delimiter, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaPinSchema, REGISTRATION_TOKEN_PATTERN } from '../config/edge.ts';
import { BootstrapError, bootstrapGateway, HELM_VALUES_FILE } from '../gateway/sync/bootstrap.ts';
import { defaultConfigDir, gitWorkTree } from '../gateway/sync/config-dir.ts';
import { type Command, parse, shownUrl, UsageError } from './command.ts';
import { progress } from './output.ts';

const NAME = 'gateway bootstrap';
const MODES = ['standalone', 'helm'] as const;

export const gatewayBootstrap: Command = {
  usage: `-t TOKEN --ca-pin sha256:HEX --url https://HOST:PORT [-o DIR] [--force] standalone|helm [--json]

The install command of \`gatehouse gateway create\` (or \`gateway install-command\`) holds every value. The token
works once, for 5 minutes. The control plane's CA must match --ca-pin, or nothing is sent and nothing written.
DIR receives gateway.json, tls/ca.pem, tls/gateway.crt and tls/gateway.key (mode 0600); "helm" also writes
values.yaml for deploy/helm/gatehouse. An already bootstrapped DIR is refused: delete it to bootstrap again.
DIR defaults to $XDG_CONFIG_HOME/gatehouse/edge-gateway (~/.config/gatehouse/edge-gateway), /etc/gatehouse/edge-gateway
as root, and $GATEHOUSE_CONFIG_DIR when set (the container image: /etc/edge-gateway); \`gateway run\` reads the same
default. A DIR inside a git work tree is refused (the private key does not belong in a repository) unless --force.`,
  async run(args) {
    const { values, positionals } = parse(
      NAME,
      args,
      {
        token: { type: 'string', short: 't' },
        'ca-pin': { type: 'string' },
        url: { type: 'string' },
        output: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      true,
    );
    for (const [flag, value] of [
      ['-t/--token', values.token],
      ['--ca-pin', values['ca-pin']],
      ['--url', values.url],
    ] as const) {
      if (value === undefined || value === '')
        throw new UsageError(`${NAME}: ${flag} is required (the install command holds it)`);
    }
    // Never echo the token, not even a malformed one: it may be a real one mistyped.
    if (!REGISTRATION_TOKEN_PATTERN.test(values.token!))
      throw new UsageError(
        `${NAME}: -t/--token: not a registration token (expected "ghr_" and 32 letters and digits, as in the install command)`,
      );
    const pin = CaPinSchema.safeParse(values['ca-pin']);
    if (!pin.success)
      throw new UsageError(`${NAME}: --ca-pin: ${pin.error.issues[0]!.message} (got "${values['ca-pin']}")`);
    let url: URL;
    try {
      url = new URL(values.url!);
    } catch {
      throw new UsageError(
        `${NAME}: --url: not a URL (got "${shownUrl(values.url!)}"); it is the control plane's bootstrap endpoint, e.g. https://cp.example.com:8443`,
      );
    }
    if (url.protocol !== 'https:')
      throw new UsageError(`${NAME}: --url: must be an https:// URL (got "${shownUrl(values.url!)}")`);
    if (positionals.length !== 1 || !(MODES as readonly string[]).includes(positionals[0]!)) {
      throw new UsageError(
        `${NAME}: give the mode, standalone or helm, as the one argument (got ${positionals.length === 0 ? 'none' : positionals.map((p) => `"${p}"`).join(' ')})`,
      );
    }
    const mode = positionals[0] as (typeof MODES)[number];
    if (values.output === '')
      throw new UsageError(`${NAME}: -o/--output: give a directory, or leave it out for the default`);
    const output = values.output ?? defaultConfigDir();
    const repository = await gitWorkTree(output);
    if (repository && !values.force)
      throw new UsageError(
        `${NAME}: ${resolve(output)} is inside the git work tree ${repository}: the gateway's private key does not belong in a repository. Leave out -o to use ${defaultConfigDir()}, name a directory outside it, or pass --force`,
      );

    let result;
    // Key generation, registration and the files: a few seconds on a slow machine or link.
    const steps = progress(1);
    steps.step(`registering with ${url.host}: key pair, certificate, configuration`);
    try {
      result = await bootstrapGateway({
        token: values.token!,
        caPin: pin.data,
        url: url.href,
        dir: output,
        mode,
      });
    } catch (error) {
      if (!(error instanceof BootstrapError)) throw error;
      if (error.userMistake) throw new UsageError(`${NAME}: ${error.message}`);
      console.error(`gatehouse: ${NAME}: ${error.message}`);
      return 1;
    } finally {
      steps.done();
    }
    if (values.json) {
      console.log(
        JSON.stringify(
          {
            dir: result.dir,
            identity: result.identity,
            files: result.files,
            certificate: { serial: result.certificate.serial, notAfter: result.certificate.notAfter.toISOString() },
          },
          null,
          2,
        ),
      );
      return 0;
    }
    const { identity } = result;
    const shown = relative(process.cwd(), result.dir) || '.';
    const dir = shown.startsWith('..')
      ? result.dir
      : shown.startsWith('.') || shown.startsWith('/')
        ? shown
        : `./${shown}`;
    const lines = [
      `Bootstrapped edge gateway "${identity.gatewayName}" (${identity.gatewayId}) of workspace ${identity.workspaceName}, environment ${identity.environment}, into ${dir}`,
      `  certificate    serial ${result.certificate.serial}, valid until ${result.certificate.notAfter.toISOString()} (renewed over the live channel)`,
      `  control plane  sync ${identity.controlPlane.sync}, telemetry ${identity.controlPlane.telemetry}`,
      ...(identity.controlPlane.alternates?.length
        ? [
            `  other replicas ${identity.controlPlane.alternates.map((r) => r.sync).join(', ')} (dialled in turn when one is lost)`,
          ]
        : []),
      `  files          ${result.files.join(', ')} (the key${mode === 'helm' ? ` and ${HELM_VALUES_FILE}` : ''} with mode 0600)`,
      '',
      mode === 'helm'
        ? `Next: helm install gatehouse-${identity.gatewayName.toLowerCase().replace(/[^a-z0-9-]+/g, '-')} deploy/helm/gatehouse -f ${dir}/${HELM_VALUES_FILE}`
        : `Next: ${await gatehouseCommand()} gateway run${resolve(result.dir) === defaultConfigDir() ? '' : ` --config ${dir}`}`,
      `Bootstrapping again needs a new token and an empty directory: delete ${dir} first.`,
    ];
    console.log(lines.join('\n'));
    return 0;
  },
};

/**
 * How to call gatehouse in a printed command so that it works as printed here: `gatehouse` when it is on the PATH,
 * otherwise this checkout's bin/gatehouse (relative to the current directory when below it).
 */
export async function gatehouseCommand(): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    if (
      await access(join(dir, 'gatehouse'), constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return 'gatehouse';
  }
  const bin = fileURLToPath(new URL('../../bin/gatehouse', import.meta.url));
  const shown = relative(process.cwd(), bin);
  return shown.startsWith('..') ? bin : shown;
}
