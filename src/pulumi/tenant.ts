import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { z } from 'zod';
import { API_VERSION, NAMESPACE_PREFIX } from '../api/constants.ts';
import { tenantSpecSchema } from '../api/tenant.ts';
import { tenantNameSchema } from '../api/tenantbackup.ts';
import { describeIssues } from '../api/validate.ts';

// A Tenant declared in a Pulumi program. The spec is checked with the very
// zod schema the CRD is generated from, so a wrong value stops `pulumi
// preview` with the field named, before anything reaches the cluster.

/** The spec as written (defaults may be left out), typed from the schema. */
export type TenantSpecInput = z.input<typeof tenantSpecSchema>;

export interface TenantArgs {
  /** metadata.name of the Tenant; its namespace is tenant-<name>. */
  name: pulumi.Input<string>;
  spec: pulumi.Input<TenantSpecInput>;
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  annotations?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** Thrown for a Tenant the cluster would refuse; the message names each field. */
export class InvalidTenantError extends Error {
  override name = 'InvalidTenantError';
}

/** The name and spec, checked; the spec is returned as written (the API server fills defaults). */
export function validateTenant(
  name: string,
  spec: TenantSpecInput,
): { name: string; spec: TenantSpecInput } {
  const problems: string[] = [];
  const checkedName = tenantNameSchema.safeParse(name);
  if (!checkedName.success) problems.push(describeIssues(checkedName.error, 'metadata.name'));
  const checkedSpec = tenantSpecSchema.safeParse(spec);
  if (!checkedSpec.success) problems.push(describeIssues(checkedSpec.error, 'spec'));
  if (problems.length > 0) throw new InvalidTenantError(`Tenant ${name}: ${problems.join('; ')}`);
  return { name, spec };
}

function isPlain(value: unknown): boolean {
  // An Output or a promise is known only at deployment; anything else now.
  return !pulumi.Output.isInstance(value) && !(value instanceof Promise);
}

export class Tenant extends pulumi.ComponentResource {
  /** The Tenant object in the cluster. */
  readonly resource: k8s.apiextensions.CustomResource;
  readonly tenantName: pulumi.Output<string>;
  /** The tenant's namespace, tenant-<name>. */
  readonly namespace: pulumi.Output<string>;

  constructor(name: string, args: TenantArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tenant-operator:index:Tenant', name, {}, opts);
    // Plain values fail here, at construction: `pulumi preview` stops with
    // the message. Values from other resources are checked once known,
    // before the Tenant is sent.
    if (isPlain(args.name) && isPlain(args.spec))
      validateTenant(args.name as string, args.spec as TenantSpecInput);
    const checked = pulumi
      .all([args.name, args.spec])
      .apply(([tenantName, spec]) => validateTenant(tenantName, spec as TenantSpecInput));
    this.tenantName = checked.name;
    this.namespace = checked.name.apply((n) => `${NAMESPACE_PREFIX}${n}`);
    this.resource = new k8s.apiextensions.CustomResource(
      name,
      {
        apiVersion: API_VERSION,
        kind: 'Tenant',
        metadata: {
          name: checked.name,
          ...(args.labels ? { labels: args.labels } : {}),
          ...(args.annotations ? { annotations: args.annotations } : {}),
        },
        spec: checked.spec,
      },
      { parent: this },
    );
    this.registerOutputs({ tenantName: this.tenantName, namespace: this.namespace });
  }
}
