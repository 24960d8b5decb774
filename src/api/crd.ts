import { z } from 'zod';
import { GROUP, MAX_TENANT_NAME_LENGTH, VERSION } from './constants.ts';
import { backupStoreSpecSchema, backupStoreStatusSchema } from './backupstore.ts';
import { databaseServerSpecSchema, databaseServerStatusSchema } from './databaseserver.ts';
import { tenantBackupSpecSchema, tenantBackupStatusSchema } from './tenantbackup.ts';
import { tenantObjectValidations, tenantSpecSchema, tenantStatusSchema } from './tenant.ts';

// Turns the zod schemas into CustomResourceDefinitions. Kubernetes wants a
// *structural* schema, which is JSON Schema with a few differences; the
// translation below covers exactly the constructs our schemas use.

type JsonSchema = { [key: string]: unknown };

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
  spec: z.ZodType;
  status: z.ZodType;
  validations: { rule: string; message: string }[];
  printerColumns: { name: string; type: string; jsonPath: string; priority?: number }[];
  /** kubectl explain's text for metadata.name and spec. */
  nameDescription: string;
  specDescription: string;
}

export const tenantKind: KindDefinition = {
  kind: 'Tenant',
  plural: 'tenants',
  singular: 'tenant',
  shortNames: ['tn'],
  categories: ['tenancy'],
  spec: tenantSpecSchema,
  status: tenantStatusSchema,
  validations: tenantObjectValidations,
  nameDescription: `The tenant's name, a DNS label of at most ${MAX_TENANT_NAME_LENGTH} characters: its namespace is tenant-<name>.`,
  specDescription:
    'Who owns the tenant, its state, and what it gets: network, quota, database, backups, retention.',
  // "Is it healthy, and when is it erased": the last backup as an age, the
  // purge time as a timestamp (kubectl prints a future date as <invalid>).
  printerColumns: [
    { name: 'State', type: 'string', jsonPath: '.spec.state' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Region', type: 'string', jsonPath: '.spec.region' },
    { name: 'Last Backup', type: 'date', jsonPath: '.status.lastBackup.time' },
    { name: 'Purge After', type: 'string', jsonPath: '.status.purgeAfter' },
    { name: 'Namespace', type: 'string', jsonPath: '.status.namespace', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export const databaseServerKind: KindDefinition = {
  kind: 'DatabaseServer',
  plural: 'databaseservers',
  singular: 'databaseserver',
  shortNames: ['dbs'],
  categories: ['tenancy'],
  spec: databaseServerSpecSchema,
  status: databaseServerStatusSchema,
  validations: [],
  nameDescription: "The server's name, as Tenants' status names it.",
  specDescription: 'A PostgreSQL server tenant databases are placed on, and how to reach it.',
  printerColumns: [
    { name: 'Host', type: 'string', jsonPath: '.spec.host' },
    { name: 'Region', type: 'string', jsonPath: '.spec.region' },
    { name: 'Reachable', type: 'boolean', jsonPath: '.status.reachable' },
    { name: 'Databases', type: 'integer', jsonPath: '.status.databases' },
    { name: 'Capacity', type: 'integer', jsonPath: '.spec.capacity.maxDatabases' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

const READY = '.status.conditions[?(@.type=="Ready")].status';

export const backupStoreKind: KindDefinition = {
  kind: 'BackupStore',
  plural: 'backupstores',
  singular: 'backupstore',
  shortNames: ['bst'],
  categories: ['tenancy'],
  spec: backupStoreSpecSchema,
  status: backupStoreStatusSchema,
  validations: [],
  nameDescription: "The store's name.",
  specDescription: 'Where encrypted backups of a region go: an S3 bucket or a directory.',
  // JSONPath cannot say "s3" or "filesystem", so the type shows as the column that is filled.
  printerColumns: [
    { name: 'Bucket', type: 'string', jsonPath: '.spec.s3.bucket' },
    { name: 'Path', type: 'string', jsonPath: '.spec.filesystem.path' },
    { name: 'Region', type: 'string', jsonPath: '.spec.region' },
    { name: 'Default', type: 'boolean', jsonPath: '.spec.default' },
    { name: 'Ready', type: 'string', jsonPath: READY },
    { name: 'Endpoint', type: 'string', jsonPath: '.spec.s3.endpoint', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export const tenantBackupKind: KindDefinition = {
  kind: 'TenantBackup',
  plural: 'tenantbackups',
  singular: 'tenantbackup',
  shortNames: ['tbk'],
  categories: ['tenancy'],
  spec: tenantBackupSpecSchema,
  status: tenantBackupStatusSchema,
  validations: [],
  nameDescription: "The backup record's name; an on-demand backup is asked for by creating one.",
  specDescription: 'Which tenant to back up; written once, never changed.',
  printerColumns: [
    { name: 'Tenant', type: 'string', jsonPath: '.spec.tenant' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Size', type: 'integer', jsonPath: '.status.bytes' },
    { name: 'Reason', type: 'string', jsonPath: '.spec.reason', priority: 1 },
    { name: 'Store', type: 'string', jsonPath: '.status.store', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export const ALL_KINDS: KindDefinition[] = [
  tenantKind,
  databaseServerKind,
  backupStoreKind,
  tenantBackupKind,
];

/** zod's JSON Schema, reshaped into a Kubernetes structural schema. */
export function structuralSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, target: 'openapi-3.0', unrepresentable: 'throw' });
  return toStructural(json);
}

function toStructural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema') continue;
    // Structural schemas forbid additionalProperties:false next to properties;
    // the API server prunes unknown fields anyway.
    if (key === 'additionalProperties' && value === false) continue;
    // zod spells "any safe integer" with bounds Kubernetes does not need.
    if (
      (key === 'minimum' || key === 'maximum') &&
      Math.abs(value as number) >= Number.MAX_SAFE_INTEGER
    ) {
      continue;
    }
    out[key] = transform(value);
  }
  return out;
}

function transform(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(transform);
  if (value !== null && typeof value === 'object') return toStructural(value as JsonSchema);
  return value;
}

export function customResourceDefinition(def: KindDefinition): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Cluster',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: def.categories,
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: `${GROUP}/${VERSION}` },
                kind: { type: 'string', description: def.kind },
                // The API server allows bounds on metadata.name and generateName only
                // (nothing on metadata itself, not even a description); with both, it
                // can estimate what CEL rules that read the name cost.
                metadata: {
                  type: 'object',
                  properties: {
                    name: { type: 'string', maxLength: 253, description: def.nameDescription },
                    generateName: {
                      type: 'string',
                      maxLength: 253,
                      description: 'A prefix for a name the API server completes.',
                    },
                  },
                },
                spec: { ...structuralSchema(def.spec, 'input'), description: def.specDescription },
                status: {
                  ...structuralSchema(def.status, 'output'),
                  description: `What tenant-operator observed of this ${def.kind}; written by it alone.`,
                },
              },
              ...(def.validations.length > 0
                ? { 'x-kubernetes-validations': def.validations }
                : {}),
            },
          },
        },
      ],
    },
  };
}
