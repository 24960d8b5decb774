import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';

// The operator installed by a Pulumi program: the CRDs from crds/ (generated
// from src/api, the same files the chart links to) and the Helm chart at
// charts/tenant-operator, rendered by the kubernetes provider's Helm support.
// The chart's own CRD step is skipped: one source, applied once, first.

const PACKAGE_ROOT = join(import.meta.dirname, '..', '..');
export const CRDS_DIR = join(PACKAGE_ROOT, 'crds');
export const CHART_DIR = join(PACKAGE_ROOT, 'charts', 'tenant-operator');

export interface TenantOperatorArgs {
  /** The release namespace (tenant-system). */
  namespace?: pulumi.Input<string>;
  /** Create the namespace too (true). */
  createNamespace?: boolean;
  /** Chart values, as values.yaml documents them; values.schema.json checks them. */
  values?: pulumi.Inputs;
  /**
   * The chart version the program expects (Chart.yaml's `version`; chart and
   * operator are released together). Checked at construction: a package
   * upgraded under the program stops `pulumi preview` instead of installing
   * another operator.
   */
  version?: string;
}

/** The CRD files, in a stable order. */
export function crdFiles(): string[] {
  return readdirSync(CRDS_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(CRDS_DIR, f));
}

/** The version in this package's Chart.yaml. */
export function chartVersion(): string {
  const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version?: unknown };
  if (typeof chart.version !== 'string') throw new Error(`${CHART_DIR}/Chart.yaml has no version`);
  return chart.version;
}

export class TenantOperator extends pulumi.ComponentResource {
  readonly crds: k8s.yaml.v2.ConfigGroup;
  readonly chart: k8s.helm.v4.Chart;
  readonly namespace?: k8s.core.v1.Namespace;
  /** The release namespace, once it exists (when created here). */
  readonly namespaceName: pulumi.Output<string>;

  constructor(name: string, args: TenantOperatorArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super('tenant-operator:index:TenantOperator', name, {}, opts);
    // Helm ignores a version for a chart given as a directory, so the pin is
    // checked here rather than passed on.
    if (args.version !== undefined && args.version !== chartVersion())
      throw new Error(
        `TenantOperator ${name}: version ${args.version} was asked for, but this package carries chart ${chartVersion()}`,
      );
    const namespaceName = args.namespace ?? 'tenant-system';
    this.crds = new k8s.yaml.v2.ConfigGroup(
      `${name}-crds`,
      { files: crdFiles() },
      { parent: this },
    );
    const dependsOn: pulumi.Resource[] = [this.crds];
    if (args.createNamespace ?? true) {
      this.namespace = new k8s.core.v1.Namespace(
        `${name}-namespace`,
        { metadata: { name: namespaceName } },
        { parent: this },
      );
      dependsOn.push(this.namespace);
    }
    this.namespaceName = this.namespace
      ? this.namespace.metadata.name
      : pulumi.output(namespaceName);
    this.chart = new k8s.helm.v4.Chart(
      name,
      {
        chart: CHART_DIR,
        namespace: namespaceName,
        skipCrds: true,
        values: args.values ?? {},
      },
      // The chart's objects include the operator's Deployment, which watches
      // the CRDs: they go first.
      { parent: this, dependsOn },
    );
    this.registerOutputs({ namespace: this.namespaceName });
  }
}
