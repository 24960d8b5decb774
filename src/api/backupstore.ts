import { z } from 'zod';
import { conditionSchema, statusGenerationSchema } from './common.ts';

// BackupStore: where encrypted backups go. An S3-compatible bucket or a
// filesystem path (a mounted volume), optionally for one region. Backups are
// encrypted before they leave the backup job, so a store never sees
// plaintext; its credentials are the operator's, never a tenant's.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const secretNameSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(DNS_SUBDOMAIN, 'must be a Secret name (a DNS subdomain)');

const secretKeySchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret key (letters, digits, -, _ and .)');

/** http(s)://host[:port], host a name, an IPv4 address or an [IPv6] address; no path. */
const ENDPOINT_PATTERN =
  /^https?:\/\/([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?\/?$/;

/** S3's rules for bucket names (the strict, DNS-compatible ones). */
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Path segments that start with no dot: never `.`, `..`, or a hidden file. */
const SEGMENT = '[A-Za-z0-9_@+=,-][A-Za-z0-9._@+=,-]*';
const KEY_PREFIX_PATTERN = new RegExp(`^${SEGMENT}(/${SEGMENT})*/?$`);
const ABSOLUTE_PATH_PATTERN = new RegExp(`^(/${SEGMENT})+/?$`);

const s3Schema = z
  .object({
    endpoint: z
      .string()
      .max(512)
      .regex(
        ENDPOINT_PATTERN,
        'must be http(s)://host[:port], e.g. https://s3.eu-west-1.example.com',
      )
      .optional()
      .meta({
        description:
          "URL of an S3-compatible server, http(s)://host[:port]. Unset: AWS S3 for signingRegion. Use https outside a test setup: backups are encrypted either way, but the store's credentials are not.",
      }),
    bucket: z
      .string()
      .regex(BUCKET_PATTERN, 'must be a bucket name: 3-63 lower-case letters, digits, . and -')
      .meta({ description: 'The bucket; it must exist (the operator never creates buckets).' }),
    prefix: z
      .string()
      .max(256)
      .regex(
        KEY_PREFIX_PATTERN,
        'must be a key prefix such as backups/ (segments start with no dot)',
      )
      .optional()
      .meta({
        description:
          'Key prefix inside the bucket; each tenant gets its own prefix below it (tenants/<name>/<uid>/).',
      }),
    forcePathStyle: z.boolean().default(false).meta({
      description:
        'Address the bucket as https://endpoint/bucket instead of https://bucket.endpoint; most self-hosted servers need true.',
    }),
    signingRegion: z
      .string()
      .max(63)
      .regex(/^[a-z0-9][-a-z0-9]*$/, 'must be a region name such as us-east-1')
      .default('us-east-1')
      .meta({ description: 'Region requests are signed for (SigV4).' }),
    credentialsSecret: z
      .object({
        name: secretNameSchema.meta({
          description: "Name of the Secret, in the operator's namespace.",
        }),
      })
      .strict()
      .meta({
        description:
          "A Secret in the operator's namespace with keys accessKeyId and secretAccessKey. Store credentials never live in a tenant's namespace: backup jobs run in the operator's namespace and read them there.",
      }),
    caSecret: z
      .object({
        name: secretNameSchema.meta({
          description: "Name of the Secret, in the operator's namespace.",
        }),
        key: secretKeySchema.default('ca.crt').meta({ description: 'Key holding the PEM CA.' }),
      })
      .strict()
      .optional()
      .meta({
        description:
          "A Secret in the operator's namespace with the PEM CA the endpoint's certificate chains to; unset: the system's CAs.",
      }),
  })
  .strict();

const filesystemSchema = z
  .object({
    path: z
      .string()
      .max(1024)
      .regex(
        ABSOLUTE_PATH_PATTERN,
        'must be an absolute path such as /var/backups (segments start with no dot)',
      )
      .meta({
        description:
          'Absolute path of a directory mounted into the operator and its backup jobs (a shared volume).',
      }),
  })
  .strict();

export const EXACTLY_ONE_STORE_MESSAGE = 'exactly one of s3 and filesystem must be set';

export const backupStoreSpecSchema = z
  .object({
    region: z
      .string()
      .max(63)
      .regex(DNS_LABEL, 'must be a DNS label such as eu-west')
      .optional()
      .meta({ description: 'Tenants with this spec.region keep their backups here.' }),
    default: z.boolean().optional().meta({
      description:
        'The store for tenants whose region has no store of its own (or that name no region). Only one store should say so.',
    }),
    s3: s3Schema.optional().meta({ description: 'An S3-compatible bucket.' }),
    filesystem: filesystemSchema.optional().meta({
      description: 'A directory on a volume mounted into the operator and its backup jobs.',
    }),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if ((spec.s3 === undefined) === (spec.filesystem === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: EXACTLY_ONE_STORE_MESSAGE });
    }
  })
  .meta({
    'x-kubernetes-validations': [
      { rule: 'has(self.s3) != has(self.filesystem)', message: EXACTLY_ONE_STORE_MESSAGE },
    ],
  });

export type BackupStoreSpec = z.output<typeof backupStoreSpecSchema>;

export const backupStoreStatusSchema = z.object({
  observedGeneration: statusGenerationSchema,
  reachable: z.boolean().optional().meta({
    description: 'Whether the last check could write to and read from the store.',
  }),
  message: z.string().optional().meta({ description: 'What the last check found.' }),
  lastChecked: z.string().optional().meta({ description: 'When the store was last checked.' }),
  conditions: z
    .array(conditionSchema)
    .optional()
    .meta({ description: 'Ready: the store answers and takes writes.' }),
});

export type BackupStoreStatus = z.output<typeof backupStoreStatusSchema>;
