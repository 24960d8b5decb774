#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { DEFAULT_OPERATOR_USER } from '../admission/identities.ts';
import { Operator } from '../controller/manager.ts';
import { MAX_SHARDS } from '../controller/shards.ts';
import { toOperatorError } from '../errors.ts';
import { loadClusterAccess } from '../k8s/cluster-access.ts';
import { KubeClient } from '../k8s/client.ts';
import { createLogger } from '../log.ts';
import { parseClusterCidrs } from '../tenant/egress-blocks.ts';
import {
  operatorVault,
  VAULT_IDENTITY_USAGE,
  vaultIdentityFromEnv,
  type OperatorVault,
} from '../vault/identity.ts';
import { readCredentialFile } from '../vault/login-methods.ts';
import { BACKUP_USAGE, runBackupCommand } from './backup.ts';
import { CERTIFICATE_USAGE, runCertificateCommand } from './certificate.ts';
import { CHART_FILES_DIR } from './gen-chart.ts';
import { generateCrds } from './gen-crds.ts';
import {
  installAdmissionGuard,
  installCrds,
  installTenantFinalizerPolicy,
} from './install-crds.ts';
import { INSTALL_RBAC_USAGE, installRbac, parseInstallRbacArgs } from './install-rbac.ts';
import { parseOperatorOptions, UsageError } from './options.ts';

// Entry points of the operator image: `operator` runs the controller,
// `gen-crds` writes the CRDs, the admission guard, the alert rules and the
// chart's generated files, `install-crds` applies the CRDs and the guard to a
// cluster, `install-rbac` the operator's roles.

const USAGE = `usage: tenant-operator <command> [options]

commands:
  operator       run the controller (reads KUBECONFIG, or the in-cluster service account)
  gen-crds [DIR] [ADMISSION_DIR] [MONITORING_DIR] [CHART_FILES_DIR]
                 write the CustomResourceDefinitions generated from src/api into DIR (crds),
                 the admission guard for the default identities into ADMISSION_DIR (admission),
                 the Prometheus alert rules into MONITORING_DIR (monitoring), and the RBAC
                 rules and admission guard the chart renders into CHART_FILES_DIR
                 (${CHART_FILES_DIR})
  install-crds   apply the CRDs and the admission guard (ValidatingAdmissionPolicies) to the
                 current cluster and wait until they are served
  install-rbac   apply the operator's least-privilege ClusterRole and Roles, bound to the
                 identity it runs as (the chart does this itself)
  backup         run, list, restore and verify encrypted tenant backups (see below)
  certificate    verify an erasure certificate (see below)

install-crds options (repeatable):
  --operator-user NAME       the operator's user name: only it (and Kubernetes' garbage
                             collector and namespace controller) may change what it manages
                             (${DEFAULT_OPERATOR_USER})
  --break-glass-group GROUP  a group exempt from the guard, for emergencies (none)

${INSTALL_RBAC_USAGE}

operator options (environment variable in brackets):
  --namespace NS          namespace of the leader-election Lease [POD_NAMESPACE] (tenant-system)
  --concurrency N         tenants reconciled at once, 1-1000 (8)
  --api-qps N             requests a second to the API server, at most, 1-10000 (200);
                          a 429 from the server is retried after its Retry-After
  --api-concurrency N     requests to the API server at once, at most, 1-1000 (32)
  --resync-period SEC     full resync period, seconds, 1-2147483 (300); each tenant's
                          resync has its own place in the period, so they are spread
  --metrics-port PORT     port of /metrics, /healthz, /readyz [METRICS_PORT] (8080; 0 = any free port)
  --metrics-host HOST     address to listen on (0.0.0.0)
  --lease-duration SEC    leader lease duration, seconds, 2-3600 (15)
  --identity ID           leader-election identity [POD_NAME] (hostname-pid)
  --shards N              split tenants over N shards by a hash of their name, each with
                          its own Lease; replicas share them out evenly, and take over
                          a dead one's after a lease duration [SHARDS] (1: one leader
                          for all), 1-${MAX_SHARDS}
  --cluster-cidr CIDR     a pod, service or node range of the cluster; repeat for each
                          [CLUSTER_CIDRS, comma-separated]. Tenants' egress rules never
                          open these (nor the cloud metadata ranges), so 0.0.0.0/0 means
                          the internet. Give every range, IPv4 and IPv6.
  --min-rotation-interval SEC
                          shortest spec.database.rotationInterval accepted (60; tests use 1)
  --backup-image IMAGE    the image backup jobs run: this operator's own [BACKUP_IMAGE]
                          (tenant-operator:latest; the chart sets the exact tag)
  --verify-concurrency N  backup verifications (scratch restores) at once, 1-64 (1)
  --certificate-retention DURATION
                          how long an erasure certificate's copy is kept (1826d: five years)
  --purged-tenants keep|delete
                          a Tenant closed with spec.state, once erased: kept as the record
                          of its erasure, or deleted [PURGED_TENANTS] (keep). A Tenant
                          deleted with kubectl is always released once erased.

Logs: LOG_LEVEL (info), LOG_FORMAT (json, or pretty: the default on a terminal)

Vault (tenant databases need it): VAULT_ADDR (unset: no databases), VAULT_NAMESPACE,
VAULT_KV_MOUNT (secret), VAULT_K8S_AUDIENCE (vault: the audience tenant service-account
tokens must carry)
${VAULT_IDENTITY_USAGE}

${BACKUP_USAGE}

${CERTIFICATE_USAGE}
`;

/**
 * The operator's Vault client, or undefined without VAULT_ADDR. A missing
 * credential file is a deployment mistake: better to fail at start than to
 * retry a login that cannot work.
 */
async function vaultFromEnv(
  log: ReturnType<typeof createLogger>,
  beforeWrite: () => void,
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
    beforeWrite,
  });
}

async function runOperator(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  // Checked before anything starts: bad input never gets half an operator.
  const options = parseOperatorOptions(args);
  const log = createLogger();
  // A malformed range stops the operator: a typo must not open the cluster.
  try {
    parseClusterCidrs(options.clusterCidrs);
  } catch (err: unknown) {
    throw new UsageError(`--cluster-cidr: ${(err as Error).message}`);
  }
  if (options.clusterCidrs.length === 0) {
    log.warn(
      'no --cluster-cidr given: tenants whose allowEgressCIDRs cover the cluster ranges can reach the cluster itself',
    );
  }
  // Vault writes are fenced like API writes: only while the lease is surely
  // ours. The operator is built after its Vault client, hence the late binding.
  let fence: () => void = () => undefined;
  const vault = await vaultFromEnv(log, () => fence());
  const { leaseDurationSeconds } = options;
  const operator = new Operator({
    cluster: await loadClusterAccess(),
    log,
    namespace: options.namespace,
    identity: options.identity,
    concurrency: options.concurrency,
    apiRateLimit: { qps: options.apiQps, concurrency: options.apiConcurrency },
    resyncPeriodMs: options.resyncPeriodSeconds * 1000,
    vaultVerifyPeriodMs: options.vaultVerifyPeriodSeconds * 1000,
    metricsHost: options.metricsHost,
    metricsPort: options.metricsPort,
    leaseDurationSeconds,
    renewDeadlineMs: (leaseDurationSeconds * 1000 * 2) / 3,
    retryPeriodMs: Math.max(500, (leaseDurationSeconds * 1000) / 7),
    shards: options.shards,
    ...(vault ? { vault: vault.client } : {}),
    vaultKvMount: process.env.VAULT_KV_MOUNT ?? 'secret',
    vaultAudience: process.env.VAULT_K8S_AUDIENCE ?? 'vault',
    clusterCidrs: options.clusterCidrs,
    minRotationIntervalMs: options.minRotationIntervalSeconds * 1000,
    certificateRetentionMs: options.certificateRetentionSeconds * 1000,
    deletePurgedTenants: options.purgedTenants === 'delete',
    backup: {
      image: options.backupImage,
      verifyConcurrency: options.verifyConcurrency,
      ...(process.env.VAULT_ADDR ? { vaultAddr: process.env.VAULT_ADDR } : {}),
      ...(process.env.VAULT_TRANSIT_MOUNT ? { transitMount: process.env.VAULT_TRANSIT_MOUNT } : {}),
    },
    onLostLeadership: () => {
      // Another replica may already be writing: stop at once, let the
      // Deployment restart us as a standby.
      log.error('leadership lost; exiting');
      process.exit(1);
    },
  });
  fence = () => operator.assertLeading();
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

async function runInstallCrds(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'operator-user': { type: 'string', multiple: true, default: [DEFAULT_OPERATOR_USER] },
      'break-glass-group': { type: 'string', multiple: true, default: [] },
    },
  });
  const identities = {
    operatorUsers: values['operator-user'],
    breakGlassGroups: values['break-glass-group'],
  };
  for (const name of [...identities.operatorUsers, ...identities.breakGlassGroups]) {
    if (name.trim() === '') throw new Error('--operator-user and --break-glass-group need a name');
  }
  const client = await KubeClient.create(await loadClusterAccess());
  try {
    await installCrds(client);
    const guard = await installAdmissionGuard(client, identities);
    console.log(
      `CRDs and admission guard installed (operator: ${identities.operatorUsers.join(', ')}; break-glass: ${identities.breakGlassGroups.join(', ') || 'none'})`,
    );
    if (guard === 'installer-exempt')
      console.log('you are exempt from the guard, so whether it is enforced yet was not checked');
    if ((await installTenantFinalizerPolicy(client)) === 'not-served')
      console.log(
        'this API server has no MutatingAdmissionPolicy (Kubernetes 1.36): the operator adds Tenant finalizers itself',
      );
  } finally {
    await client.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return runOperator(rest);
    case 'gen-crds': {
      for (const file of await generateCrds(
        rest[0] ?? 'crds',
        rest[1] ?? 'admission',
        rest[2] ?? 'monitoring',
        rest[3] ?? CHART_FILES_DIR,
      ))
        console.log(`wrote ${file}`);
      return;
    }
    case 'install-crds':
      return runInstallCrds(rest);
    case 'install-rbac': {
      const request = parseInstallRbacArgs(rest);
      const client = await KubeClient.create(await loadClusterAccess());
      try {
        await installRbac(client, request);
      } finally {
        await client.close();
      }
      console.log(
        `operator RBAC installed: ${request.name} in ${request.namespace}, bound to ${request.subjects.map((s) => `${s.kind} ${s.name}`).join(', ')}`,
      );
      return;
    }
    case 'certificate': {
      const log = createLogger(undefined, 'stderr');
      return runCertificateCommand(rest, {
        vaultFromEnv: () => vaultFromEnv(log, () => undefined),
      });
    }
    case 'backup': {
      // The backup job's own log lines (JSON, like the operator's) on stderr,
      // so stdout is the command's answer. No fence: a job is not a leader,
      // and its writes are its own records.
      const log = createLogger(undefined, 'stderr');
      return runBackupCommand(rest, {
        loadClusterAccess,
        vaultFromEnv: () => vaultFromEnv(log, () => undefined),
      });
    }
    default:
      process.stderr.write(USAGE);
      process.exitCode = command === undefined || command === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(
      `tenant-operator: ${err.message}\n(see tenant-operator operator --help)\n`,
    );
    process.exit(2);
  }
  process.stderr.write(`tenant-operator: ${toOperatorError(err).message}\n`);
  process.exit(1);
});
