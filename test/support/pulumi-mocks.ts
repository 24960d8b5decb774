import * as pulumi from '@pulumi/pulumi';

// Pulumi's own mock runtime (no CLI, no engine): every resource a program
// registers is recorded with its inputs, so a test sees exactly what
// `pulumi up` would send to the provider.

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export async function recordResources(): Promise<Registered[]> {
  const registered: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs as Record<string, unknown>,
        });
        return { id: `${args.name}-id`, state: args.inputs as Record<string, unknown> };
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    'tenant-operator-test',
    'test',
    true,
  );
  return registered;
}

/** The value of an Output, or its error. */
export function settled<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    output.apply((value) => {
      resolve(value);
      return value;
    });
    // An apply that throws rejects the Output's own promise; surface it.
    (output as unknown as { promise(): Promise<T> }).promise().catch(reject);
  });
}

/** Resolves once every resource registered so far has been recorded. */
export async function registrations(
  registered: Registered[],
  type: string,
  count: number,
): Promise<Registered[]> {
  for (let i = 0; i < 100; i++) {
    const found = registered.filter((r) => r.type === type);
    if (found.length >= count) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(
    `only ${registered.filter((r) => r.type === type).length} of ${count} ${type} registered; saw ${registered.map((r) => r.type).join(', ')}`,
  );
}
