import { z } from 'zod';
import { conditionSchema } from './common.ts';

// DatabaseServer: a PostgreSQL server (or cluster endpoint) that tenant
// databases may be placed on. Its admin credentials live in Vault; the CR
// only says where.

const dnsLabel = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label such as eu-west');

export const databaseServerSpecSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .max(253)
      .meta({ description: 'Host name or IP address clients connect to.' }),
    port: z.number().int().min(1).max(65_535).default(5432),
    region: dnsLabel
      .optional()
      .meta({ description: 'Tenants with this spec.region are placed here.' }),
    tls: z
      .object({
        caSecretRef: z
          .object({
            name: z.string().min(1).max(253),
            namespace: z.string().min(1).max(63),
            key: z.string().min(1).max(253).default('ca.crt'),
          })
          .strict()
          .meta({
            description: 'Secret holding the PEM CA; with it, connections use verify-full.',
          }),
      })
      .strict()
      .optional(),
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
      .object({ maxDatabases: z.number().int().min(1).max(100_000).default(100) })
      .strict()
      .prefault({}),
  })
  .strict();

export type DatabaseServerSpec = z.output<typeof databaseServerSpecSchema>;

export const databaseServerStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  reachable: z.boolean().optional(),
  databases: z
    .number()
    .int()
    .optional()
    .meta({ description: 'Tenant databases placed on this server.' }),
  serverVersion: z.string().optional(),
  lastChecked: z.string().optional(),
  lastError: z.string().optional(),
  conditions: z.array(conditionSchema).optional(),
});

export type DatabaseServerStatus = z.output<typeof databaseServerStatusSchema>;
