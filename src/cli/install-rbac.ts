import { parseArgs } from 'node:util';
import { DEFAULT_OPERATOR_NAMESPACE } from '../admission/identities.ts';
import type { KubeClient } from '../k8s/client.ts';
import { operatorRbacObjects, type RbacSubject } from '../rbac/operator-rbac.ts';
import { UsageError } from './options.ts';

// `tenant-operator install-rbac`: the operator's least-privilege roles, bound
// to the identity it runs as, for clusters where it is not installed by the
// chart (the local stack of the tests, the demo and the benchmark). Server-side
// apply: running it again changes nothing.

export const INSTALL_RBAC_USAGE = `install-rbac options:
  --namespace NS             the operator's namespace (${DEFAULT_OPERATOR_NAMESPACE})
  --name NAME                name of the roles and bindings (tenant-operator)
  --service-account NAME     bind a ServiceAccount of the operator's namespace (repeatable)
  --group GROUP              bind a group, e.g. the client certificate's O= (repeatable)`;

export interface InstallRbacRequest {
  name: string;
  namespace: string;
  subjects: RbacSubject[];
}

export function parseInstallRbacArgs(args: string[]): InstallRbacRequest {
  const { values } = parseArgs({
    args,
    options: {
      namespace: { type: 'string', default: DEFAULT_OPERATOR_NAMESPACE },
      name: { type: 'string', default: 'tenant-operator' },
      'service-account': { type: 'string', multiple: true, default: [] },
      group: { type: 'string', multiple: true, default: [] },
    },
  });
  const namespace = values.namespace;
  const subjects: RbacSubject[] = [
    ...values['service-account'].map((name): RbacSubject => ({
      kind: 'ServiceAccount',
      name,
      namespace,
    })),
    ...values.group.map((name): RbacSubject => ({
      kind: 'Group',
      apiGroup: 'rbac.authorization.k8s.io',
      name,
    })),
  ];
  if (subjects.some((s) => s.name.trim() === ''))
    throw new UsageError('--service-account and --group need a name');
  if (subjects.length === 0)
    throw new UsageError('install-rbac needs at least one --service-account or --group');
  return { name: values.name, namespace, subjects };
}

export async function installRbac(client: KubeClient, request: InstallRbacRequest): Promise<void> {
  for (const object of operatorRbacObjects(request)) await client.apply(object);
}
