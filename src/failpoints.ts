// TEST-ONLY FAULT INJECTION. A failpoint is a named place in the code where
// a test can make the operator die, to prove that a crash exactly there is
// survived. Each is off unless named in the environment variable
// TENANT_OPERATOR_FAILPOINTS (comma-separated) of the operator process;
// production never sets it. The death is real: the process sends itself
// SIGKILL, so nothing after the failpoint runs, no handler, no flush, exactly
// as when a node dies.
//
//   after-credentials-write   right after new database credentials reach Vault,
//                             before the Tenant's status records them
//   after-on-demand-job       right after an on-demand backup's Job is created,
//                             before its TenantBackup records it
//   after-expiry-manifest     right after retention deleted an expired backup's
//                             manifest, before its data and its record
//   purge-after-<step>        right after a purge step is recorded in status,
//                             before the next (see src/tenant/purge.ts)

export const FAILPOINTS = [
  'after-credentials-write',
  'after-on-demand-job',
  'after-expiry-manifest',
  'purge-after-access',
  'purge-after-database',
  'purge-after-backups',
  'purge-after-secrets',
  'purge-after-key',
  'purge-after-namespace',
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export const FAILPOINTS_ENV = 'TENANT_OPERATOR_FAILPOINTS';

function enabledFailpoints(env: NodeJS.ProcessEnv): Set<string> {
  const names = (env[FAILPOINTS_ENV] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  for (const name of names) {
    if (!(FAILPOINTS as readonly string[]).includes(name)) {
      // A misspelt failpoint would make a crash test pass without crashing.
      throw new Error(`${FAILPOINTS_ENV}: unknown failpoint ${JSON.stringify(name)}`);
    }
  }
  return new Set(names);
}

const enabled = enabledFailpoints(process.env);

/** Kills this process at once when `name` is enabled; does nothing otherwise. */
export function failpoint(name: Failpoint): void {
  if (!enabled.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing the process (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}
