#!/usr/bin/env node
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Operator } from '../controller/manager.ts';
import { toOperatorError } from '../errors.ts';
import { KubeClient } from '../k8s/client.ts';
import { createLogger } from '../log.ts';
import {
  operatorVault,
  VAULT_IDENTITY_USAGE,
  vaultIdentityFromEnv,
  type OperatorVault,
} from '../vault/identity.ts';
import { readCredentialFile } from '../vault/login-methods.ts';
import { generateCrds } from './gen-crds.ts';
import { installCrds } from './install-crds.ts';

// Entry points of the operator image: `operator` runs the controller,
// `gen-crds` writes the CRDs, `install-crds` applies them to a cluster.

const USAGE = `usage: tenant-operator <command> [options]

commands:
  operator       run the controller (reads KUBECONFIG, or the in-cluster service account)
  gen-crds DIR   write the CustomResourceDefinitions generated from src/api into DIR
  install-crds   apply the CRDs to the current cluster and wait until they are served

operator options (environment variable in brackets):
  --namespace NS          namespace of the leader-election Lease [POD_NAMESPACE] (tenant-system)
  --concurrency N         tenants reconciled at once (8)
  --resync-period SEC     full resync period, seconds (300)
  --metrics-port PORT     port of /metrics, /healthz, /readyz [METRICS_PORT] (8080; 0 = any free port)
  --metrics-host HOST     address to listen on (0.0.0.0)
  --lease-duration SEC    leader lease duration (15)
  --identity ID           leader-election identity [POD_NAME] (hostname-pid)

Vault (tenant databases need it): VAULT_ADDR (unset: no databases), VAULT_NAMESPACE,
VAULT_KV_MOUNT (secret), VAULT_K8S_AUDIENCE (vault: the audience tenant service-account
tokens must carry)
${VAULT_IDENTITY_USAGE}
`;

function loadKubeConfig(): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return kubeConfig;
}

/**
 * The operator's Vault client, or undefined without VAULT_ADDR. A missing
 * credential file is a deployment mistake: better to fail at start than to
 * retry a login that cannot work.
 */
async function vaultFromEnv(
  log: ReturnType<typeof createLogger>,
): Promise<OperatorVault | undefined> {
  const address = process.env.VAULT_ADDR;
  if (!address) return undefined;
  const identity = vaultIdentityFromEnv(process.env);
  if (identity.method === 'kubernetes')
    await readCredentialFile('service account token for Vault', identity.tokenFiles);
  if (identity.method === 'approle')
    await readCredentialFile('AppRole secret ID for Vault', [identity.secretIdFile]);
  if (identity.method !== 'token' && process.env.VAULT_TOKEN)
    log.warn(
      { vaultAuth: { method: identity.method } },
      'VAULT_TOKEN is set but ignored: VAULT_AUTH_METHOD wins',
    );
  return operatorVault(identity, {
    address,
    ...(process.env.VAULT_NAMESPACE ? { namespace: process.env.VAULT_NAMESPACE } : {}),
    log,
  });
}

async function runOperator(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      namespace: { type: 'string', default: process.env.POD_NAMESPACE ?? 'tenant-system' },
      concurrency: { type: 'string', default: '8' },
      'resync-period': { type: 'string', default: '300' },
      'metrics-port': { type: 'string', default: process.env.METRICS_PORT ?? '8080' },
      'metrics-host': { type: 'string', default: '0.0.0.0' },
      'lease-duration': { type: 'string', default: '15' },
      identity: { type: 'string', default: process.env.POD_NAME ?? `${hostname()}-${process.pid}` },
    },
  });
  const log = createLogger();
  const vault = await vaultFromEnv(log);
  const leaseDurationSeconds = Number(values['lease-duration']);
  const operator = new Operator({
    kubeConfig: loadKubeConfig(),
    log,
    namespace: values.namespace,
    identity: values.identity,
    concurrency: Number(values.concurrency),
    resyncPeriodMs: Number(values['resync-period']) * 1000,
    metricsHost: values['metrics-host'],
    metricsPort: Number(values['metrics-port']),
    leaseDurationSeconds,
    renewDeadlineMs: (leaseDurationSeconds * 1000 * 2) / 3,
    retryPeriodMs: Math.max(500, (leaseDurationSeconds * 1000) / 7),
    ...(vault ? { vault: vault.client } : {}),
    vaultKvMount: process.env.VAULT_KV_MOUNT ?? 'secret',
    vaultAudience: process.env.VAULT_K8S_AUDIENCE ?? 'vault',
    onLostLeadership: () => {
      // Another replica may already be writing: stop at once, let the
      // Deployment restart us as a standby.
      log.error('leadership lost; exiting');
      process.exit(1);
    },
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    operator
      .stop()
      .then(() => vault?.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await operator.start();
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return runOperator(rest);
    case 'gen-crds': {
      for (const file of await generateCrds(rest[0] ?? 'crds')) console.log(`wrote ${file}`);
      return;
    }
    case 'install-crds': {
      const client = await KubeClient.create(loadKubeConfig());
      await installCrds(client);
      await client.close();
      console.log('CRDs installed');
      return;
    }
    default:
      process.stderr.write(USAGE);
      process.exitCode = command === undefined || command === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`tenant-operator: ${toOperatorError(err).message}\n`);
  process.exit(1);
});
