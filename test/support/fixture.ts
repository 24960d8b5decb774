import type { KubeClient } from '../../src/k8s/client.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { adminClient, createTenant, eraseTenantAndWait, waitForPhase } from './cluster.ts';
import { OperatorProcess, type OperatorStartOptions } from './operator.ts';

// One fixture for integration test files: an admin client, a leading
// operator, and tenants whose names carry the file's prefix, all removed when
// the fixture is disposed. Files using it depend on nothing another file left
// behind, and leave nothing behind themselves.
//
//   await using env = await TestEnvironment.start('drift');
//   const name = await env.tenant('a', { ... });    // creates "drift-a"

export class TestEnvironment {
  readonly client: KubeClient;
  readonly operator: OperatorProcess;
  private readonly prefix: string;
  private readonly created: string[] = [];

  private constructor(prefix: string, client: KubeClient, operator: OperatorProcess) {
    this.prefix = prefix;
    this.client = client;
    this.operator = operator;
  }

  static async start(prefix: string, options: OperatorStartOptions = {}): Promise<TestEnvironment> {
    const client = await adminClient();
    const operator = await OperatorProcess.start(options);
    await operator.waitUntilLeader();
    return new TestEnvironment(prefix, client, operator);
  }

  /** The full name of a tenant of this file. */
  name(suffix: string): string {
    return `${this.prefix}-${suffix}`;
  }

  /** Creates `<prefix>-<suffix>` (no database unless the spec asks) and remembers it for cleanup. */
  async tenant(suffix: string, spec: Record<string, unknown> = {}): Promise<string> {
    const name = this.name(suffix);
    this.created.push(name);
    await createTenant(this.client, name, spec);
    return name;
  }

  async tenantReady(suffix: string, spec: Record<string, unknown> = {}): Promise<TenantObject> {
    const name = await this.tenant(suffix, spec);
    return waitForPhase(this.client, name, 'Ready', 60_000);
  }

  /** Removes every tenant this fixture created (and waits for their namespaces), then stops. */
  async [Symbol.asyncDispose](): Promise<void> {
    const failures: string[] = [];
    for (const name of this.created) {
      await eraseTenantAndWait(this.client, name).catch((err: unknown) =>
        failures.push(`${name}: ${(err as Error).message}`),
      );
    }
    await this.operator.stop();
    await this.client.close();
    if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
  }
}
