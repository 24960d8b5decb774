import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { onDemandJobName } from '../../src/backup/on-demand-job.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { requireEnv, serviceAccountToken } from './cluster.ts';
import { waitFor } from './wait.ts';

// A backup pod, without a kubelet: its container's command run as a local
// process with the pod's environment, its Kubernetes identity a token of
// the pod's ServiceAccount and its Vault identity a projected token of the
// same account (audience vault), exactly as the pod would mount them.

export const REPO = join(import.meta.dirname, '..', '..');
export const OPERATOR_NAMESPACE = 'tenant-system';

interface Container {
  command: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
}

interface PodSpec {
  containers: Container[];
  serviceAccountName: string;
}

/** A kubeconfig that is the ServiceAccount: the pod's in-cluster credentials. */
export function kubeconfigOf(serviceAccount: string, workDir: string): string {
  const admin = new KubeConfig();
  admin.loadFromFile(requireEnv('KUBECONFIG'));
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster);
  const ca =
    cluster.caData ??
    (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined);
  assert.ok(ca, 'no cluster CA');
  const file = join(workDir, `${serviceAccount}.kubeconfig`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': ca } },
      ],
      users: [
        {
          name: 'u',
          user: { token: serviceAccountToken(serviceAccount, OPERATOR_NAMESPACE) },
        },
      ],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
    { mode: 0o600 },
  );
  return file;
}

/** The pod spec of a CronJob (its job template) or of a Job. */
export function podSpecOf(object: KubeObject): PodSpec {
  const spec = object.spec as {
    jobTemplate?: { spec: { template: { spec: PodSpec } } };
    template?: { spec: PodSpec };
  };
  const pod = spec.jobTemplate?.spec.template.spec ?? spec.template?.spec;
  assert.ok(pod, `${object.kind} ${object.metadata.name} has no pod template`);
  return pod;
}

/** The pod's container command and environment, for a local process (`extraArgs` appended). */
export function backupPodInvocation(
  object: KubeObject,
  workDir: string,
  extraArgs: string[] = [],
): { args: string[]; env: Record<string, string> } {
  const pod = podSpecOf(object);
  const container = pod.containers[0];
  assert.ok(container);
  assert.equal(container.command[0], 'tenant-operator');
  const tokenFile = join(workDir, `${pod.serviceAccountName}.vault-token`);
  writeFileSync(
    tokenFile,
    serviceAccountToken(pod.serviceAccountName, OPERATOR_NAMESPACE, 'vault'),
    { mode: 0o600 },
  );
  const podEnv: Record<string, string> = {};
  for (const variable of container.env) {
    if (variable.value !== undefined) podEnv[variable.name] = variable.value;
    else if (variable.name === 'POD_NAMESPACE') podEnv[variable.name] = OPERATOR_NAMESPACE;
    else assert.fail(`unexpected env ${variable.name}`);
  }
  // The one path that differs: the projected token's mount.
  podEnv.VAULT_K8S_TOKEN_FILE = tokenFile;
  return {
    args: ['src/cli/main.ts', ...container.command.slice(1), ...extraArgs],
    env: {
      PATH: process.env.PATH ?? '',
      KUBECONFIG: kubeconfigOf(pod.serviceAccountName, workDir),
      ...podEnv,
    },
  };
}

/** Runs the pod's container command to its end as a local process with the pod's environment. */
export function runBackupPod(
  object: KubeObject,
  workDir: string,
  extraArgs: string[] = [],
): SpawnSyncReturns<string> {
  const { args, env } = backupPodInvocation(object, workDir, extraArgs);
  return spawnSync(process.execPath, args, {
    cwd: REPO,
    env,
    encoding: 'utf8',
    timeout: 180_000,
  });
}

/** The operator-side commands (verify, restore), run with an administrator's rights. */
export function runBackupCommandAsAdmin(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['src/cli/main.ts', 'backup', ...args], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH,
      KUBECONFIG: requireEnv('KUBECONFIG'),
      VAULT_ADDR: requireEnv('VAULT_ADDR'),
      VAULT_TOKEN: requireEnv('VAULT_TOKEN'),
      POD_NAMESPACE: OPERATOR_NAMESPACE,
    },
    encoding: 'utf8',
    timeout: 180_000,
  });
}

/** Applies an on-demand TenantBackup and waits for the Job the operator makes for it. */
export async function requestOnDemandJob(
  client: KubeClient,
  tenant: string,
  recordName: string,
  spec: Record<string, unknown> = {},
): Promise<KubeObject> {
  await client.create(collectionPath(RESOURCES.TenantBackup), {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'TenantBackup',
    metadata: { name: recordName },
    spec: { tenant, ...spec },
  });
  return waitFor(
    `the Job of TenantBackup ${recordName}`,
    () =>
      client.get<KubeObject>(
        objectPath(RESOURCES.Job, onDemandJobName(recordName), OPERATOR_NAMESPACE),
      ),
    { timeoutMs: 30_000 },
  );
}
