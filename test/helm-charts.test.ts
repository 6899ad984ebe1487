/**
 * The Helm charts render into the Kubernetes objects they promise (`helm` is not packaged by Debian, so the charts
 * are rendered by test/helm-render.ts, which refuses any template construct it does not know), and the Docker
 * Compose file runs two control-plane replicas on one PostgreSQL with one encryption key, and an edge gateway.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from './helpers.ts';
import { ChartFail, renderChart } from './helm-render.ts';

const CONTROL_CHART = join(REPO_ROOT, 'deploy/helm/gatehouse-control-plane');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kubernetes objects of many shapes; asserted on below
type K8s = any;

describe('the control plane Helm chart', () => {
  const required = { advertiseHost: 'gatehouse.example.com', publicUrl: 'https://api.example.com' };
  const objects = renderChart(CONTROL_CHART, required) as K8s[];
  const byKind = (kind: string) => objects.find((o) => o.kind === kind);

  it('runs several replicas, one at a time in a rolling update, with the database URL and encryption key from Secrets', () => {
    const deployment = byKind('Deployment');
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(deployment.spec.strategy.rollingUpdate, { maxUnavailable: 0, maxSurge: 1 });
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.deepEqual(container.args.slice(0, 2), ['control', 'start']);
    const arg = (flag: string) => container.args[container.args.indexOf(flag) + 1];
    assert.equal(arg('--advertise-host'), 'gatehouse.example.com');
    assert.equal(arg('--public-url'), 'https://api.example.com');
    assert.equal(arg('--shutdown-delay'), '5s');
    assert.equal(arg('--drain-timeout'), '10s');
    const env = Object.fromEntries(container.env.map((e: K8s) => [e.name, e]));
    assert.deepEqual(env.DATABASE_URL.valueFrom.secretKeyRef, { name: 'gatehouse-database', key: 'url' });
    assert.equal(env.GATEHOUSE_ENCRYPTION_KEY_FILE.value, '/var/run/gatehouse/encryption/keys');
    const keyVolume = pod.volumes.find((v: K8s) => v.name === 'encryption-key');
    assert.equal(keyVolume.secret.secretName, 'gatehouse-encryption-key');
    assert.deepEqual(keyVolume.secret.items, [{ key: 'keys', path: 'keys' }]);
    assert.equal(keyVolume.secret.defaultMode, 0o400);
    assert.ok(
      container.volumeMounts.some(
        (m: K8s) => m.name === 'encryption-key' && m.mountPath === '/var/run/gatehouse/encryption',
      ),
    );
    // SIGTERM: shutdown delay and drain fit in the grace period.
    assert.ok(pod.terminationGracePeriodSeconds > 5 + 10);
  });

  it('probes readiness (/readyz, 503 while draining) and liveness on the ops port', () => {
    const container = byKind('Deployment').spec.template.spec.containers[0];
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'ops' });
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'ops' });
    assert.deepEqual(
      container.ports.map((p: K8s) => [p.name, p.containerPort]),
      [
        ['gateway', 8080],
        ['admin', 8081],
        ['ops', 9090],
        ['bootstrap', 8443],
        ['sync', 8444],
      ],
    );
  });

  it('has a Service for the admin API, bootstrap and sync (and the cloud gateway) and a PodDisruptionBudget', () => {
    const service = byKind('Service');
    assert.deepEqual(
      service.spec.ports.map((p: K8s) => [p.name, p.port, p.targetPort]),
      [
        ['gateway', 8080, 'gateway'],
        ['admin', 8081, 'admin'],
        ['bootstrap', 8443, 'bootstrap'],
        ['sync', 8444, 'sync'],
      ],
    );
    const selector = byKind('Deployment').spec.selector.matchLabels;
    assert.deepEqual(service.spec.selector, selector);
    const pdb = byKind('PodDisruptionBudget');
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, selector);
    assert.equal(pdb.metadata.name, 'gh-gatehouse-control-plane');
  });

  it('refuses to render without the host gateways dial or the public URL', () => {
    assert.throws(() => renderChart(CONTROL_CHART, { publicUrl: 'https://api.example.com' }), ChartFail);
    assert.throws(
      () => renderChart(CONTROL_CHART, { advertiseHost: 'gatehouse.example.com' }),
      /publicUrl is required/,
    );
  });
});

describe('the Docker Compose file', () => {
  const compose = parseYaml(readFileSync(join(REPO_ROOT, 'deploy/compose/docker-compose.yaml'), 'utf8'), {
    merge: true, // `<<: *control`, as Docker Compose reads it
  }) as K8s;

  it('runs two control-plane replicas on one PostgreSQL with one encryption key, and an edge gateway', () => {
    const services = compose.services;
    assert.ok(services.postgres.image.startsWith('postgres:'));
    const replicas = ['control-a', 'control-b'].map((name) => services[name]);
    for (const r of replicas) {
      assert.deepEqual(r.command.slice(0, 2), ['control', 'start']);
      assert.match(r.environment.DATABASE_URL, /^postgres:\/\/.*@postgres:5432\//);
      assert.equal(r.environment.GATEHOUSE_ENCRYPTION_KEY_FILE, '/run/secrets/gatehouse_encryption_key');
      assert.ok(r.secrets.includes('gatehouse_encryption_key'));
      assert.ok(r.depends_on.postgres);
      assert.ok(r.healthcheck);
    }
    assert.equal(replicas[0].environment.DATABASE_URL, replicas[1].environment.DATABASE_URL);
    assert.ok(compose.secrets.gatehouse_encryption_key.file);
    assert.deepEqual(services.edge.command.slice(0, 2), ['gateway', 'run']);
  });
});
