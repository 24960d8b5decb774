import type { KubeObject } from '../k8s/types.ts';
import { childMetadata, type ValidTenant } from './model.ts';

// Quota caps what the whole namespace may request; the LimitRange gives every
// container defaults so pods without resource requests still fit the quota
// (with a compute quota, the API server refuses pods that state no requests).

export const QUOTA_NAME = 'tenant-quota';
export const LIMIT_RANGE_NAME = 'tenant-limits';

export function buildResourceQuota(tenant: ValidTenant): KubeObject {
  const { cpu, memory, pods, storage } = tenant.spec.quota;
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: childMetadata(tenant, QUOTA_NAME, tenant.namespace),
    spec: {
      hard: {
        'requests.cpu': cpu,
        'limits.cpu': cpu,
        'requests.memory': memory,
        'limits.memory': memory,
        'requests.storage': storage,
        pods: String(pods),
      },
    },
  };
}

export function buildLimitRange(tenant: ValidTenant): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: childMetadata(tenant, LIMIT_RANGE_NAME, tenant.namespace),
    spec: {
      limits: [
        {
          type: 'Container',
          default: { cpu: '500m', memory: '512Mi' },
          defaultRequest: { cpu: '100m', memory: '128Mi' },
        },
      ],
    },
  };
}
