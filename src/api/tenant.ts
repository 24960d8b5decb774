import { z } from 'zod';
import { MAX_TENANT_NAME_LENGTH, NAMESPACE_PREFIX, RESERVED_TENANT_NAMES } from './constants.ts';
import { cronScheduleSchema } from './cron.ts';
import { durationSchema } from './duration.ts';
import { storedBackupFields } from './tenantbackup.ts';
import {
  conditionSchema,
  statusGenerationSchema,
  labelSelectorSchema,
  quantitySchema,
} from './common.ts';

// The Tenant API. These zod schemas are the single source of truth: the CRD's
// openAPIV3Schema is generated from them (src/api/crd.ts) and the operator
// validates every Tenant with them again before acting.

export const TENANT_STATES = ['Active', 'Suspended', 'Closed'] as const;
export type TenantState = (typeof TENANT_STATES)[number];

export const TENANT_PHASES = [
  'Provisioning',
  'Ready',
  'Suspended',
  'Closed',
  'Purging',
  'Purged',
  'Failed',
] as const;
export type TenantPhase = (typeof TENANT_PHASES)[number];

// An owner is one person, team or pipeline. `system:` names are Kubernetes'
// own identities and groups (system:authenticated is every signed-in user,
// system:serviceaccounts every pod): as an owner they would open the tenant to
// everyone, so they are refused here and in the CRD.
const SYSTEM_PREFIX = 'system:';
const SYSTEM_OWNER_MESSAGE =
  "must not start with 'system:': Kubernetes' own users and groups (system:authenticated, system:serviceaccounts, ...) reach beyond one tenant and cannot be owners";

const ownerSchema = z
  .object({
    kind: z
      .enum(['User', 'Group', 'ServiceAccount'])
      .meta({ description: 'User, Group or ServiceAccount.' }),
    name: z.string().min(1).max(253).meta({
      description:
        "The user's, group's or ServiceAccount's name; Kubernetes' own (system:…) are refused.",
    }),
    namespace: z.string().min(1).max(63).optional().meta({
      description:
        "Namespace of a ServiceAccount owner; required for that kind only. Another tenant's namespace (tenant-*) is refused.",
    }),
  })
  .strict()
  .superRefine((owner, ctx) => {
    if (owner.kind !== 'ServiceAccount' && owner.name.startsWith(SYSTEM_PREFIX)) {
      ctx.addIssue({ code: 'custom', path: ['name'], message: SYSTEM_OWNER_MESSAGE });
    }
  })
  .meta({
    'x-kubernetes-validations': [
      {
        rule: "self.kind != 'ServiceAccount' || has(self.namespace)",
        message: 'a ServiceAccount owner needs a namespace',
        fieldPath: '.namespace',
      },
      {
        rule: `self.kind == 'ServiceAccount' || !self.name.startsWith('${SYSTEM_PREFIX}')`,
        message: SYSTEM_OWNER_MESSAGE,
        fieldPath: '.name',
      },
    ],
  });

export type TenantOwner = z.output<typeof ownerSchema>;

/**
 * Whether a ServiceAccount owner lives in another tenant's namespace: its
 * pods would then act in this tenant too. The CRD refuses such owners (a rule
 * on the whole object, which knows the Tenant's name).
 */
export function ownerReachesAnotherTenant(owner: TenantOwner, tenantName: string): boolean {
  return (
    owner.kind === 'ServiceAccount' &&
    owner.namespace !== undefined &&
    owner.namespace.startsWith(NAMESPACE_PREFIX) &&
    owner.namespace !== `${NAMESPACE_PREFIX}${tenantName}`
  );
}

const cidrSchema = z
  .string()
  .min(3)
  .max(49)
  .regex(/^[0-9a-fA-F:.]+\/[0-9]{1,3}$/, 'must be a CIDR such as 203.0.113.0/24')
  .meta({
    'x-kubernetes-validations': [{ rule: 'isCIDR(self)', message: 'must be a valid CIDR' }],
  });

const networkSchema = z
  .object({
    allowIngressFromNamespaces: z.array(labelSelectorSchema).max(32).default([]).meta({
      description: 'Namespaces (by label) whose pods may open connections into the tenant.',
    }),
    allowEgressCIDRs: z.array(cidrSchema).max(64).default([]).meta({
      description: 'Address ranges outside the cluster that the tenant may connect to.',
    }),
  })
  .strict();

/** How many objects of one kind the namespace may hold. */
const countSchema = (fallback: number, what: string) =>
  z
    .number()
    .int()
    .min(0)
    .max(100_000)
    .default(fallback)
    .meta({ description: `How many ${what} the namespace may hold.` });

const quotaSchema = z
  .object({
    cpu: quantitySchema
      .default('4')
      .meta({ description: 'CPU all containers may request together (e.g. 4, 500m).' }),
    memory: quantitySchema
      .default('8Gi')
      .meta({ description: 'Memory all containers may request together (e.g. 8Gi).' }),
    pods: countSchema(50, 'Pods (those that have finished do not count)'),
    storage: quantitySchema.default('100Gi').meta({
      description: 'Storage all PersistentVolumeClaims may request together.',
    }),
    ephemeralStorage: quantitySchema.default('20Gi').meta({
      description: "Node-local scratch space (containers' writable layers, emptyDir, logs).",
    }),
    configMaps: countSchema(100, 'ConfigMaps'),
    secrets: countSchema(100, 'Secrets'),
    services: countSchema(20, 'Services'),
    persistentVolumeClaims: countSchema(20, 'PersistentVolumeClaims'),
    jobs: countSchema(50, 'Jobs (batch/v1)'),
    nodePorts: countSchema(0, 'node ports').meta({
      description:
        "How many ports the tenant may open on every node: one per port of a NodePort Service, and of a LoadBalancer Service unless its spec.allocateLoadBalancerNodePorts is false. Node ports are reachable from outside the cluster, past the tenant's network policies.",
    }),
    loadBalancers: countSchema(0, 'LoadBalancer Services').meta({
      description:
        'How many LoadBalancer Services the namespace may hold: each one faces the internet and costs money.',
    }),
  })
  .strict();

const databaseSchema = z
  .object({
    enabled: z.boolean().default(true).meta({
      description:
        'Whether the tenant gets its own PostgreSQL database (on a DatabaseServer of its region).',
    }),
    rotationInterval: durationSchema.default('30d').meta({
      description:
        'How often the login password is replaced (two login roles take turns, so nothing connected breaks).',
    }),
    delivery: z.enum(['Vault', 'VaultAndSecret']).default('Vault').meta({
      description:
        "Vault: the credentials are only in Vault, read with the tenant's ServiceAccount token. VaultAndSecret: also in a Secret database-credentials in the tenant's namespace.",
    }),
  })
  .strict();

const backupSchema = z
  .object({
    enabled: z.boolean().default(true).meta({
      description:
        'Whether scheduled backups run. Backups need the database too: with spec.database.enabled false there is nothing to back up.',
    }),
    schedule: cronScheduleSchema(
      'H 2 * * *',
      "When backups run (UTC), as five cron fields: minute hour day-of-month month day-of-week. H stands for a value derived from the tenant's name, stable over time, so that many tenants do not all start at once; H/n is every n starting at such a value.",
    ),
    retention: durationSchema.default('35d').meta({
      description:
        "Backups older than this are deleted; the newest good backup is always kept, and a Closed tenant's backups stay until its purge.",
    }),
    verifySchedule: cronScheduleSchema(
      'H H * * 0',
      'When the latest backup is restored into a scratch database and checked (UTC), as five cron fields; H as in schedule.',
    ),
    keyRotationInterval: durationSchema.default('90d').meta({
      description:
        "How often the tenant's backup encryption key (its Vault Transit key) gets a new version. Older versions stay usable until no retained backup needs them.",
    }),
  })
  .strict();

const retentionSchema = z
  .object({
    afterClosure: durationSchema.default('60d').meta({
      description: 'How long data is kept after closure before it is erased.',
    }),
    legalHold: z.boolean().default(false).meta({
      description: 'While true, erasure waits, whatever the timer says.',
    }),
  })
  .strict();

export const tenantSpecSchema = z
  .object({
    displayName: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .meta({ description: "A name for people, e.g. the customer's." }),
    owners: z.array(ownerSchema).min(1, 'at least one owner is required').max(64).meta({
      description: "Who administers the tenant's namespace (role tenancy.io:tenant-admin).",
    }),
    state: z.enum(TENANT_STATES).default('Active').meta({
      description:
        'Active; Suspended (traffic and database login cut, reversible); Closed (access cut, data erased after spec.retention.afterClosure).',
    }),
    region: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label such as eu-west')
      .max(63)
      .optional()
      .meta({
        description: 'Where the data lives: the DatabaseServer and BackupStore of this region.',
      }),
    network: networkSchema.prefault({}).meta({
      description: 'Traffic allowed beyond the default: deny all but DNS and the database.',
    }),
    quota: quotaSchema.prefault({}).meta({ description: 'What the namespace may consume.' }),
    database: databaseSchema
      .prefault({})
      .meta({ description: "The tenant's PostgreSQL database and its credentials." }),
    backup: backupSchema
      .prefault({})
      .meta({ description: 'Encrypted, verified backups of the database.' }),
    retention: retentionSchema
      .prefault({})
      .meta({ description: 'How long data outlives the account, and legal holds.' }),
  })
  .strict();

export type TenantSpec = z.output<typeof tenantSpecSchema>;

const lastBackupSchema = z.object({
  id: z.string().meta({ description: 'Backup id, which sorts by time.' }),
  time: z.string().meta({ description: "When the dump's snapshot was taken." }),
  ...storedBackupFields,
  store: z.string().optional().meta({ description: 'The BackupStore it was written to.' }),
  durationSeconds: z
    .number()
    .optional()
    .meta({ description: 'How long the run took, from start to the manifest written.' }),
});

const verifiedBackupSchema = z.object({
  id: z.string().meta({ description: 'The backup that was restored and checked.' }),
  time: z.string().meta({ description: 'When the check succeeded.' }),
});

const backupStatusSchema = z.object({
  cronJob: z.string().optional().meta({
    description: "Name of the tenant's backup CronJob, in the operator's namespace.",
  }),
  schedule: z.string().optional().meta({
    description:
      "spec.backup.schedule with every H replaced by this tenant's value, as the CronJob runs it.",
  }),
  nextRun: z.string().optional().meta({ description: 'When the next scheduled backup is due.' }),
  transitKeyVersion: z
    .number()
    .int()
    .optional()
    .meta({ description: "Latest version of the tenant's Transit key." }),
  keyRotatedAt: z
    .string()
    .optional()
    .meta({ description: "When the tenant's Transit key last got a new version." }),
  store: z
    .string()
    .optional()
    .meta({ description: "The BackupStore the tenant's next backups go to." }),
  failuresSinceSuccess: z
    .number()
    .int()
    .optional()
    .meta({ description: 'Backup runs that failed since the last one that succeeded.' }),
  nextVerification: z
    .string()
    .optional()
    .meta({ description: 'When the latest backup is next restored and checked.' }),
});

export const tenantStatusSchema = z.object({
  phase: z.enum(TENANT_PHASES).optional().meta({
    description:
      'Where the tenant is in its life: Provisioning, Ready, Suspended, Closed, Purging, Purged, Failed.',
  }),
  observedGeneration: statusGenerationSchema,
  conditions: z
    .array(conditionSchema)
    .optional()
    .meta({ description: 'Ready, and the backup, scheduling and purge conditions.' }),
  namespace: z.string().optional().meta({ description: "The tenant's namespace." }),
  database: z
    .object({
      server: z.string().optional().meta({ description: 'The DatabaseServer it is placed on.' }),
      name: z.string().optional().meta({ description: 'The PostgreSQL database.' }),
      role: z.string().optional().meta({ description: 'The login role in use now.' }),
      lastRotated: z
        .string()
        .optional()
        .meta({ description: 'When the password was last replaced.' }),
      standbyRetired: z.boolean().optional().meta({
        description: 'Whether the login role used before the last rotation has been retired.',
      }),
    })
    .optional()
    .meta({ description: "Where the tenant's database is; never its password." }),
  vaultPath: z
    .string()
    .optional()
    .meta({ description: "The Vault KV path of the tenant's database credentials." }),
  lastBackup: lastBackupSchema
    .optional()
    .meta({ description: 'The newest backup that succeeded.' }),
  lastVerifiedBackup: verifiedBackupSchema
    .optional()
    .meta({ description: 'The newest backup restored and checked successfully.' }),
  backup: backupStatusSchema
    .optional()
    .meta({ description: 'The backup schedule, store, key and failures.' }),
  closedAt: z.string().optional().meta({ description: 'When the tenant was closed.' }),
  purgeAfter: z
    .string()
    .optional()
    .meta({ description: 'When its data is erased: closedAt + spec.retention.afterClosure.' }),
  erasure: z
    .object({
      startedAt: z.string().optional().meta({ description: 'When the purge began.' }),
      trigger: z.enum(['RetentionExpired', 'ErasureRequest']).optional().meta({
        description:
          'Why: the retention time after closure passed, or an immediate erasure was requested (annotation tenancy.io/erase-now).',
      }),
      completedAt: z
        .string()
        .optional()
        .meta({ description: 'When the last trace was gone; unset while anything is left.' }),
      steps: z
        .array(
          z.object({
            name: z.string().meta({
              description: 'The step: access, database, backups, secrets, key or namespace.',
            }),
            completedAt: z.string().meta({ description: 'When it finished.' }),
            removed: z.array(z.string()).meta({ description: 'What this step deleted.' }),
          }),
        )
        .optional()
        .meta({ description: 'Each purge step as it finished, in order.' }),
      certificate: z.record(z.string(), z.string()).optional().meta({
        description:
          'The signed erasure certificate: its JSON document, the Transit signature and where copies were written; `tenant-operator certificate verify` checks it.',
      }),
    })
    .optional()
    .meta({ description: 'The purge: why, each step, and the certificate that proves it.' }),
});

export type TenantStatus = z.output<typeof tenantStatusSchema>;

/** Rules on the whole object: they see metadata.name and both spec and status. */
export const tenantObjectValidations = [
  {
    rule: `size(self.metadata.name) <= ${MAX_TENANT_NAME_LENGTH} && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,
    message: `metadata.name must be a DNS label of at most ${MAX_TENANT_NAME_LENGTH} characters (lower-case letters, digits, '-'; no dots), because the namespace is tenant-<name>`,
  },
  {
    rule: `!(self.metadata.name in [${RESERVED_TENANT_NAMES.map((n) => `'${n}'`).join(', ')}])`,
    message: `metadata.name ${RESERVED_TENANT_NAMES.join(' and ')} are reserved: tenant-${RESERVED_TENANT_NAMES[0]} is the operator's namespace and tenant-${RESERVED_TENANT_NAMES[1]} its Vault identity`,
  },
  {
    rule: `self.spec.owners.all(o, o.kind != 'ServiceAccount' || !has(o.namespace) || !o.namespace.startsWith('${NAMESPACE_PREFIX}') || o.namespace == '${NAMESPACE_PREFIX}' + self.metadata.name)`,
    message: `a ServiceAccount owner may not live in another tenant's namespace (${NAMESPACE_PREFIX}*): its pods would reach into this tenant; only ${NAMESPACE_PREFIX}<this tenant's name> is allowed`,
    fieldPath: '.spec.owners',
  },
  {
    rule: "!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Purging', 'Purged']) || self.spec.state == oldSelf.spec.state",
    message:
      'spec.state: a tenant that is being or has been purged cannot change state (it cannot be re-opened)',
  },
];
