import { canonicalQuantity } from '../k8s/quantity.ts';
import type { KubeObject } from '../k8s/types.ts';
import { childMetadata, type ValidTenant } from './model.ts';

// Quota caps what the whole namespace may use: compute, storage, node-local
// scratch space, and the number of objects of each kind a tenant could
// otherwise create without end (each one costs etcd and every watcher
// memory). Node ports and load balancers open the tenant to the outside past
// its network policies, so both are 0 unless the spec grants them.
//
// The LimitRange gives every container defaults, so pods without resource
// requests still fit the quota (with a compute or ephemeral-storage quota, the
// API server refuses pods that state no requests or limits for it).
//
// Quantities are written in the API server's canonical form, so a live object
// that says the same compares equal and a resync writes nothing.

export const QUOTA_NAME = 'tenant-quota';
export const LIMIT_RANGE_NAME = 'tenant-limits';

export function buildResourceQuota(tenant: ValidTenant): KubeObject {
  const quota = tenant.spec.quota;
  const cpu = canonicalQuantity(quota.cpu);
  const memory = canonicalQuantity(quota.memory);
  const ephemeralStorage = canonicalQuantity(quota.ephemeralStorage);
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
        'requests.storage': canonicalQuantity(quota.storage),
        'requests.ephemeral-storage': ephemeralStorage,
        'limits.ephemeral-storage': ephemeralStorage,
        pods: String(quota.pods),
        configmaps: String(quota.configMaps),
        secrets: String(quota.secrets),
        services: String(quota.services),
        persistentvolumeclaims: String(quota.persistentVolumeClaims),
        'count/jobs.batch': String(quota.jobs),
        'services.nodeports': String(quota.nodePorts),
        'services.loadbalancers': String(quota.loadBalancers),
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
          default: { cpu: '500m', memory: '512Mi', 'ephemeral-storage': '1Gi' },
          defaultRequest: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '128Mi' },
        },
      ],
    },
  };
}
