import { createHash } from 'node:crypto';
import { API_VERSION, LABEL_TENANT_BACKUP } from '../api/constants.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { TenantBackupObject } from './records.ts';

// The Job of an on-demand backup: the tenant's CronJob's own job template
// (same image, identity, limits and security context), its command told
// which TenantBackup to fill in. Owned by the record, so deleting the record
// takes the Job with it.

const MAX_JOB_NAME_LENGTH = 63;
const PREFIX = 'tbk-';

/** `tbk-<record>`; a long record name keeps its start and ends in a hash of the whole. */
export function onDemandJobName(record: string): string {
  const name = `${PREFIX}${record}`;
  if (name.length <= MAX_JOB_NAME_LENGTH) return name;
  const hash = createHash('sha256').update(record).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_JOB_NAME_LENGTH - hash.length - 1).replace(/[-.]+$/, '')}-${hash}`;
}

interface JobTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: {
    template: {
      metadata?: { labels?: Record<string, string> };
      spec: { containers: { command?: string[] }[] };
    };
  };
}

export function buildOnDemandJob(cronJob: KubeObject, record: TenantBackupObject): KubeObject {
  const template = (cronJob.spec as { jobTemplate: JobTemplate }).jobTemplate;
  const labels = {
    ...template.metadata?.labels,
    [LABEL_TENANT_BACKUP]: record.metadata.name.slice(0, 63).replace(/[-.]+$/, ''),
  };
  const [container, ...others] = template.spec.template.spec.containers;
  if (!container?.command) throw new Error(`CronJob ${cronJob.metadata.name} has no command`);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: onDemandJobName(record.metadata.name),
      ...(cronJob.metadata.namespace ? { namespace: cronJob.metadata.namespace } : {}),
      labels,
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'TenantBackup',
          name: record.metadata.name,
          uid: record.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      ...template.spec,
      template: {
        ...template.spec.template,
        metadata: { ...template.spec.template.metadata, labels },
        spec: {
          ...template.spec.template.spec,
          containers: [
            { ...container, command: [...container.command, '--record', record.metadata.name] },
            ...others,
          ],
        },
      },
    },
  };
}
