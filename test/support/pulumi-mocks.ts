import * as pulumi from '@pulumi/pulumi';

// Pulumi's own mock runtime (no CLI, no engine): every resource a program
// registers is recorded with its inputs and provider, so a test sees exactly
// what `pulumi up` would send.

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  provider: string | undefined;
}

export interface MockOptions {
  /**
   * A preview (the default) or an update. In a preview, outputs the provider
   * leaves out (a status not yet reported) are unknown and never resolve.
   */
  preview?: boolean;
  /** What the provider reports as status, by resource name (a stand-in for the operator). */
  statusByName?: ReadonlyMap<string, Record<string, unknown>>;
}

export async function recordResources(options: MockOptions = {}): Promise<Registered[]> {
  const registered: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = args.inputs as Record<string, unknown>;
        registered.push({ type: args.type, name: args.name, inputs, provider: args.provider });
        const status = options.statusByName?.get(args.name);
        return { id: `${args.name}-id`, state: status ? { ...inputs, status } : inputs };
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    'tenant-operator-test',
    'test',
    options.preview ?? true,
  );
  return registered;
}

/** The value of an Output, or its error; one that never resolves (unknown) fails instead of hanging. */
export function settled<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the Output never resolved')), 5_000);
    output.apply((value) => {
      clearTimeout(timer);
      resolve(value);
      return value;
    });
    // An apply that throws rejects the Output's own promise; surface it.
    (output as unknown as { promise(): Promise<T> }).promise().catch((error: unknown) => {
      clearTimeout(timer);
      reject(error instanceof Error ? error : new Error(String(error)));
    });
  });
}

async function waitFor<T>(find: () => T | undefined, missing: () => string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const found = find();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(missing());
}

/** The first `count` registrations of a type, once made (registration is asynchronous). */
export function registrations(
  registered: Registered[],
  type: string,
  count: number,
): Promise<Registered[]> {
  return waitFor(
    () => {
      const found = registered.filter((r) => r.type === type);
      return found.length >= count ? found : undefined;
    },
    () =>
      `only ${registered.filter((r) => r.type === type).length} of ${count} ${type} registered; saw ${registered.map((r) => r.type).join(', ')}`,
  );
}

/** One named registration, once made. */
export function registration(
  registered: Registered[],
  type: string,
  name: string,
): Promise<Registered> {
  return waitFor(
    () => registered.find((r) => r.type === type && r.name === name),
    () =>
      `${type} ${name} never reached the provider; got ${registered.map((r) => r.name).join(', ')}`,
  );
}
