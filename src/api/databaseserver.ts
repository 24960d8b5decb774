import { z } from 'zod';
import { conditionSchema, statusGenerationSchema } from './common.ts';

// DatabaseServer: a PostgreSQL server (or cluster endpoint) that tenant
// databases may be placed on. Its admin credentials live in Vault; the CR
// only says where.

const dnsLabel = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label such as eu-west');

export const TLS_MODES = ['VerifyFull', 'Disable'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

const cidrSchema = z
  .string()
  .min(3)
  .max(49)
  .regex(/^[0-9a-fA-F:.]+\/[0-9]{1,3}$/, 'must be a CIDR such as 10.20.0.0/24')
  .meta({
    'x-kubernetes-validations': [{ rule: 'isCIDR(self)', message: 'must be a valid CIDR' }],
  });

/**
 * TLS is the rule: a server needs a CA unless it says, in so many words,
 * that it runs without TLS. Checked by the API server (CEL) and again by the
 * operator (zod), with the same message.
 */
export const TLS_REQUIRED_MESSAGE =
  'a CA (tls.caSecretRef) is required: connections to database servers use TLS with verify-full; to connect without TLS, set tls.mode: Disable explicitly';
export const TLS_CONTRADICTION_MESSAGE =
  'tls.mode Disable and tls.caSecretRef contradict each other; remove one';

const TLS_RULES = [
  {
    rule: "has(self.tls) && (has(self.tls.caSecretRef) || (has(self.tls.mode) && self.tls.mode == 'Disable'))",
    message: TLS_REQUIRED_MESSAGE,
    fieldPath: '.tls',
    reason: 'FieldValueRequired',
  },
  {
    rule: "!has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'Disable' || !has(self.tls.caSecretRef)",
    message: TLS_CONTRADICTION_MESSAGE,
    fieldPath: '.tls',
  },
];

export const databaseServerSpecSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .max(253)
      .meta({ description: 'Host name or IP address clients connect to.' }),
    port: z
      .number()
      .int()
      .min(1)
      .max(65_535)
      .default(5432)
      .meta({ description: 'The port PostgreSQL listens on.' }),
    region: dnsLabel
      .optional()
      .meta({ description: 'Tenants with this spec.region are placed here.' }),
    tls: z
      .object({
        mode: z.enum(TLS_MODES).default('VerifyFull').meta({
          description:
            'VerifyFull: TLS, the server certificate must chain to caSecretRef and name the host. Disable: no TLS at all, credentials and data in clear text (must be said explicitly; the server gets a Warning).',
        }),
        caSecretRef: z
          .object({
            name: z.string().min(1).max(253).meta({ description: 'The Secret.' }),
            namespace: z.string().min(1).max(63).meta({
              description:
                'Its namespace; the chart lets the operator read Secrets in its own namespace only.',
            }),
            key: z
              .string()
              .min(1)
              .max(253)
              .default('ca.crt')
              .meta({ description: 'The key holding the PEM certificate.' }),
          })
          .strict()
          .optional()
          .meta({
            description: 'Secret holding the PEM CA the server certificate chains to.',
          }),
      })
      .strict()
      .optional()
      .meta({ description: 'How the operator and tenants connect: verify-full TLS by default.' }),
    egressCIDRs: z.array(cidrSchema).min(1).max(16).optional().meta({
      description:
        "Ranges tenants' pods may connect to (on spec.port) to reach this server. By default the addresses spec.host resolves to, looked up again at every check; set this when those addresses change faster (a managed service behind a load balancer). Never opens the cloud metadata range.",
    }),
    adminCredentialsVaultPath: z
      .string()
      .min(1)
      .max(512)
      .regex(/^[A-Za-z0-9_.\-/]+$/, 'must be a Vault KV v2 path such as database-servers/pg-eu-1')
      .meta({
        description:
          'KV v2 path (under the operator\'s KV mount) of a secret with "username" and "password" of a role that may create roles and databases.',
      }),
    capacity: z
      .object({
        maxDatabases: z.number().int().min(1).max(100_000).default(100).meta({
          description:
            'Tenant databases placed here at most; placement picks another server beyond.',
        }),
      })
      .strict()
      .prefault({})
      .meta({ description: 'How much the server takes.' }),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const disabled = spec.tls?.mode === 'Disable';
    if (!spec.tls?.caSecretRef && !disabled) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: TLS_REQUIRED_MESSAGE });
    }
    if (disabled && spec.tls?.caSecretRef) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: TLS_CONTRADICTION_MESSAGE });
    }
  })
  .meta({ 'x-kubernetes-validations': TLS_RULES });

export type DatabaseServerSpec = z.output<typeof databaseServerSpecSchema>;

export const databaseServerStatusSchema = z.object({
  observedGeneration: statusGenerationSchema,
  reachable: z
    .boolean()
    .optional()
    .meta({ description: 'Whether the last check could connect and log in.' }),
  databases: z
    .number()
    .int()
    .optional()
    .meta({ description: 'Tenant databases placed on this server.' }),
  serverVersion: z
    .string()
    .optional()
    .meta({ description: 'PostgreSQL version the server reported (server_version).' }),
  addresses: z.array(z.string()).optional().meta({
    description:
      "Where tenants' egress rules point, as last resolved from spec.host (or spec.egressCIDRs).",
  }),
  lastChecked: z.string().optional().meta({ description: 'When the server was last checked.' }),
  lastError: z
    .string()
    .optional()
    .meta({ description: 'What went wrong at the last failed check.' }),
  conditions: z
    .array(conditionSchema)
    .optional()
    .meta({ description: 'Ready (reachable, TLS as asked, capacity left) and TLSDisabled.' }),
});

export type DatabaseServerStatus = z.output<typeof databaseServerStatusSchema>;
