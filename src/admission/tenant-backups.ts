import { BACKUP_JOB_PREFIX, GROUP } from '../api/constants.ts';
import { celString, isOperatorOrBreakGlass } from './cel.ts';
import { DEFAULT_OPERATOR_NAMESPACE, type GuardIdentities } from './identities.ts';
import type { GuardPolicy } from './policy.ts';

// TenantBackups are the record of what was backed up; restore and retention
// trust them. A backup job (ServiceAccount backup-<tenant> in the operator's
// namespace) is bound, with every other ServiceAccount there, to a role that
// may write any TenantBackup: RBAC cannot say "only your own tenant's". This
// policy can, because the ServiceAccount's name is backup-<tenant> in full
// (never hashed), and spec.tenant never changes after creation (CRD rule).
//
// Status says whether a backup succeeded; only the operator and the backup
// job that made it may say so.

/** The user name of every backup job's ServiceAccount starts with this. */
export function backupJobUserPrefix(identities: GuardIdentities): string {
  const namespace = identities.operatorNamespace ?? DEFAULT_OPERATOR_NAMESPACE;
  return `system:serviceaccount:${namespace}:${BACKUP_JOB_PREFIX}`;
}

export function tenantBackupsPolicy(identities: GuardIdentities): GuardPolicy {
  const prefix = celString(backupJobUserPrefix(identities));
  const isBackupJob = `request.userInfo.username.startsWith(${prefix})`;
  const tenant = "object.spec.?tenant.orValue('')";
  const what = "'TenantBackup ' + request.name";
  return {
    name: 'tenant-backups',
    description:
      "Backup jobs write only their own tenant's TenantBackups; only the operator and backup jobs write TenantBackup status.",
    rules: [
      {
        apiGroups: [GROUP],
        apiVersions: ['*'],
        // status included, on purpose: this policy is about who writes it.
        resources: ['tenantbackups', 'tenantbackups/status'],
        operations: ['CREATE', 'UPDATE'],
      },
    ],
    where: 'everywhere',
    matchConditions: [{ name: 'not-exempt', expression: `!(${isOperatorOrBreakGlass(identities)})` }],
    validations: [
      {
        expression: `!(${isBackupJob}) || request.userInfo.username == ${prefix} + ${tenant}`,
        message: "a backup job writes only its own tenant's TenantBackups",
        messageExpression: `${what} + ': ' + request.userInfo.username + ' is not the backup job of tenant ' + ${tenant} + '; a backup job writes only its own tenant\\'s TenantBackups'`,
      },
      {
        expression: `request.?subResource.orValue('') != 'status' || ${isBackupJob}`,
        message: 'only tenant-operator and backup jobs write TenantBackup status',
        messageExpression: `${what} + ': only tenant-operator and backup jobs write TenantBackup status'`,
      },
    ],
  };
}
