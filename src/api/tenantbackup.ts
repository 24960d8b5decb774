import { z } from 'zod';
import { conditionSchema } from './common.ts';
import { MAX_TENANT_NAME_LENGTH, RESERVED_TENANT_NAMES } from './constants.ts';

// TenantBackup: the record of one backup. The backup CronJob creates one per
// scheduled run; a person applies one for an on-demand backup. The spec says
// what to back up and never changes; the status says what happened.

export const BACKUP_REASONS = ['Scheduled', 'OnDemand'] as const;
export type BackupReason = (typeof BACKUP_REASONS)[number];

export const BACKUP_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;
export type BackupPhase = (typeof BACKUP_PHASES)[number];

const TENANT_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const IMMUTABLE_SPEC_MESSAGE =
  'spec is immutable: a TenantBackup records one backup; create another one for another backup';

/** A Tenant's name: a DNS label short enough for tenant-<name>, not a reserved one. */
export const tenantNameSchema = z
  .string()
  .min(1)
  .max(MAX_TENANT_NAME_LENGTH)
  .regex(TENANT_NAME_PATTERN, 'must be a tenant name (a DNS label)')
  .refine(
    (name) => !(RESERVED_TENANT_NAMES as readonly string[]).includes(name),
    `${RESERVED_TENANT_NAMES.join(' and ')} are reserved and never tenants`,
  )
  .meta({
    description: 'Name of the Tenant to back up.',
    'x-kubernetes-validations': [
      {
        rule: `!(self in [${RESERVED_TENANT_NAMES.map((n) => `'${n}'`).join(', ')}])`,
        message: `${RESERVED_TENANT_NAMES.join(' and ')} are reserved and never tenants`,
      },
    ],
  });

export const tenantBackupSpecSchema = z
  .object({
    tenant: tenantNameSchema,
    store: z
      .string()
      .min(1)
      .max(253)
      .regex(DNS_SUBDOMAIN, 'must be a BackupStore name')
      .optional()
      .meta({
        description: "The BackupStore to write to; unset: the store of the tenant's region.",
      }),
    reason: z.enum(BACKUP_REASONS).default('OnDemand').meta({
      description:
        "Scheduled: made by the tenant's backup CronJob. OnDemand: asked for by a person.",
    }),
  })
  .strict()
  .meta({
    'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: IMMUTABLE_SPEC_MESSAGE }],
  });

export type TenantBackupSpec = z.output<typeof tenantBackupSpecSchema>;

/** What a finished backup is, in the TenantBackup's status and in the Tenant's lastBackup. */
export const storedBackupFields = {
  bytes: z
    .number()
    .int()
    .optional()
    .meta({ description: 'Size of the stored (encrypted) backup.' }),
  sha256: z
    .string()
    .optional()
    .meta({ description: 'sha256 of the stored (encrypted) backup, hex.' }),
  keyVersion: z
    .number()
    .int()
    .optional()
    .meta({ description: "Version of the tenant's Transit key that wraps the backup's data key." }),
};

export const tenantBackupStatusSchema = z.object({
  phase: z
    .enum(BACKUP_PHASES)
    .optional()
    .meta({ description: 'Pending, Running, Succeeded or Failed.' }),
  backupId: z
    .string()
    .optional()
    .meta({ description: 'Id of the backup in the store; sorts by time.' }),
  store: z.string().optional().meta({ description: 'The BackupStore the backup was written to.' }),
  location: z
    .string()
    .optional()
    .meta({ description: "Where in the store: the key prefix of the backup's objects." }),
  startedAt: z.string().optional().meta({ description: 'When the run began.' }),
  completedAt: z.string().optional().meta({ description: 'When the run ended, either way.' }),
  ...storedBackupFields,
  pgDumpVersion: z
    .string()
    .optional()
    .meta({ description: 'pg_dump --version of the run, which restores need to match.' }),
  message: z
    .string()
    .optional()
    .meta({ description: 'Why the backup failed, or what it is doing.' }),
  conditions: z
    .array(conditionSchema)
    .optional()
    .meta({ description: 'Verified: whether the backup was restored and checked.' }),
});

export type TenantBackupStatus = z.output<typeof tenantBackupStatusSchema>;
