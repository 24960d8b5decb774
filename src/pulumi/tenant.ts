import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { z } from 'zod';
import { API_VERSION, NAMESPACE_PREFIX } from '../api/constants.ts';
import type { TenantPhase } from '../api/tenant.ts';
import { ownerReachesAnotherTenant, TENANT_PHASES, tenantSpecSchema } from '../api/tenant.ts';
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

function nameProblems(name: string): string[] {
  const checked = tenantNameSchema.safeParse(name);
  return checked.success ? [] : [describeIssues(checked.error, 'metadata.name')];
}

function specProblems(spec: unknown, name: string | undefined): string[] {
  const checked = tenantSpecSchema.safeParse(spec);
  if (!checked.success) return [describeIssues(checked.error, 'spec')];
  if (name === undefined) return [];
  // The one CRD rule that needs the name as well as the spec (a rule on the
  // whole object, so the spec schema alone does not carry it).
  return checked.data.owners.flatMap((owner, i) =>
    ownerReachesAnotherTenant(owner, name)
      ? [
          `spec.owners[${i}].namespace: ${owner.namespace ?? ''} is another tenant's namespace; a ServiceAccount owner may live only in ${NAMESPACE_PREFIX}${name} or outside ${NAMESPACE_PREFIX}*`,
        ]
      : [],
  );
}

function refuse(name: string | undefined, problems: string[]): void {
  if (problems.length > 0)
    throw new InvalidTenantError(
      `Tenant ${name ?? '(name not yet known)'}: ${problems.join('; ')}`,
    );
}

/** The name and spec, checked; the spec is returned as written (the API server fills defaults). */
export function validateTenant(
  name: string,
  spec: TenantSpecInput,
): { name: string; spec: TenantSpecInput } {
  refuse(name, [...nameProblems(name), ...specProblems(spec, name)]);
  return { name, spec };
}

function isPlain<T>(value: pulumi.Input<T>): value is T {
  // An Output or a promise is known only at deployment; anything else now.
  return (
    !pulumi.Output.isInstance(value) &&
    typeof (value as Partial<PromiseLike<T>> | null | undefined)?.then !== 'function'
  );
}

function phaseOf(status: unknown): TenantPhase | undefined {
  const phase = (status as { phase?: unknown } | undefined)?.phase;
  return (TENANT_PHASES as readonly unknown[]).includes(phase) ? (phase as TenantPhase) : undefined;
}

export class Tenant extends pulumi.ComponentResource {
  /** The Tenant object in the cluster. */
  readonly resource: k8s.apiextensions.CustomResource;
  readonly tenantName: pulumi.Output<string>;
  /**
   * The tenant's namespace, tenant-<name>. Derived from the name, not read
   * from status: it is the same value, and this way it is known at preview
   * and usable by other resources before the operator has reconciled.
   */
  readonly namespace: pulumi.Output<string>;
  /**
   * status.phase as the provider last read it: after `pulumi up` that is
   * usually unset (the operator had not reconciled yet); `pulumi refresh`
   * brings it up to date.
   */
  readonly phase: pulumi.Output<TenantPhase | undefined>;

  constructor(name: string, args: TenantArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tenant-operator:index:Tenant', name, {}, opts);
    // Plain values fail here, at construction: `pulumi preview` stops with
    // the message. A name that is plain is checked even when the spec is an
    // Output, and the other way round.
    const plainName = isPlain(args.name) ? args.name : undefined;
    refuse(plainName, [
      ...(plainName === undefined ? [] : nameProblems(plainName)),
      ...(isPlain(args.spec) ? specProblems(args.spec, plainName) : []),
    ]);
    // Everything again once known. A throw here rejects the Outputs that the
    // Tenant's inputs are made of, so the Tenant is never sent and the
    // deployment fails with the same message.
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
        // Never sent (undefined is dropped): it makes the SDK keep `status`
        // from what the provider returns, which CustomResource's type omits.
        status: undefined,
      },
      { parent: this },
    );
    const status = (this.resource as unknown as { readonly status: pulumi.Output<unknown> }).status;
    this.phase = status.apply(phaseOf);
    this.registerOutputs({
      tenantName: this.tenantName,
      namespace: this.namespace,
      phase: this.phase,
    });
  }
}
