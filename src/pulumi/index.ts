// Pulumi components for provisioning pipelines: `import { Tenant,
// TenantOperator } from 'tenant-operator/pulumi'`. @pulumi/pulumi and
// @pulumi/kubernetes are optional peer dependencies: the operator's image
// does not carry them.
export { InvalidTenantError, Tenant, validateTenant } from './tenant.ts';
export type { TenantArgs, TenantSpecInput } from './tenant.ts';
export { CHART_DIR, CRDS_DIR, chartVersion, crdFiles, TenantOperator } from './tenant-operator.ts';
export type { TenantOperatorArgs } from './tenant-operator.ts';
