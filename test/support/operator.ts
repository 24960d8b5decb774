import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { requireEnv } from './cluster.ts';
import { waitFor } from './wait.ts';

// The operator as the tests run it: a real process, with the same CLI as the
// container image, whose output is kept so tests can search every line.

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const OPERATOR_NAMESPACE = 'tenant-system';

export interface OperatorStartOptions {
  identity?: string;
  resyncSeconds?: number;
  leaseDurationSeconds?: number;
  extraArgs?: string[];
  /** Extra environment for the operator process (on top of the test's own). */
  env?: Record<string, string>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class OperatorProcess {
  readonly identity: string;
  readonly output: string[] = [];
  private readonly child: ChildProcess;
  private port = 0;
  private exited: Promise<unknown>;

  private constructor(child: ChildProcess, identity: string) {
    this.child = child;
    this.identity = identity;
    this.exited = once(child, 'exit');
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      (stream as unknown as { unref?: () => void }).unref?.();
      createInterface({ input: stream }).on('line', (line) => {
        this.output.push(line);
        const match = /"metricsPort":(\d+)/.exec(line);
        if (match?.[1]) this.port = Number(match[1]);
        if (process.env.OPERATOR_LOGS) process.stderr.write(`[${identity}] ${line}\n`);
      });
    }
  }

  static async start(options: OperatorStartOptions = {}): Promise<OperatorProcess> {
    const identity = options.identity ?? `test-operator-${process.pid}-${Date.now()}`;
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'operator',
        '--namespace',
        OPERATOR_NAMESPACE,
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--identity',
        identity,
        '--resync-period',
        String(options.resyncSeconds ?? 300),
        '--lease-duration',
        String(options.leaseDurationSeconds ?? 4),
        ...(options.extraArgs ?? []),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          // The operator runs under its own identity, as it does in a cluster:
          // the admission guard tells it apart from the tests' admin.
          KUBECONFIG: requireEnv('OPERATOR_KUBECONFIG'),
          LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
          ...options.env,
        },
      },
    );
    // A failed test must not leave operators behind, nor keep the runner waiting on them.
    running.add(child);
    child.on('exit', () => running.delete(child));
    child.unref();
    const operator = new OperatorProcess(child, identity);
    await waitFor(`operator ${identity} to listen`, () => operator.port > 0 || undefined, {
      timeoutMs: 20_000,
    });
    return operator;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The exit status once the process has exited on its own (null while running or if killed). */
  get exitCode(): number | null {
    return this.child.exitCode;
  }

  /** Sends a signal without waiting for an exit (SIGSTOP, SIGCONT, a SIGTERM to observe). */
  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const response = await fetch(`http://127.0.0.1:${this.port}${path}`);
    return { status: response.status, body: await response.text() };
  }

  /**
   * The value of one metric sample, e.g. metric('tenant_operator_api_writes_total').
   * A sample that is not exposed throws: a misspelt or vanished metric must
   * fail the test, not read as 0.
   */
  async metric(name: string, labels = ''): Promise<number> {
    const { body } = await this.get('/metrics');
    const wanted = labels ? `${name}{${labels}}` : name;
    for (const line of body.split('\n')) {
      const [key, value] = line.split(' ');
      if (key === wanted && value !== undefined) return Number(value);
    }
    throw new Error(`metric ${wanted} is not exposed by ${this.identity}`);
  }

  /** Like metric(), for a labelled counter that has legitimately not been touched yet. */
  async metricOrZero(name: string, labels: string): Promise<number> {
    const { body } = await this.get('/metrics');
    if (!body.split('\n').some((line) => line.startsWith(`# TYPE ${name} `)))
      throw new Error(`metric ${name} is not registered in ${this.identity}`);
    const wanted = `${name}{${labels}}`;
    const line = body.split('\n').find((l) => l.split(' ')[0] === wanted);
    return line ? Number(line.split(' ')[1]) : 0;
  }

  /** API writes of this replica, leaving out its Lease renewals. */
  async writes(): Promise<number> {
    const { body } = await this.get('/metrics');
    let total = 0;
    for (const line of body.split('\n')) {
      const match = /^tenant_operator_api_writes_total\{resource="([^"]*)"\} (\S+)$/.exec(line);
      if (match && match[1] !== 'leases') total += Number(match[2]);
    }
    return total;
  }

  async waitUntilLeader(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${this.identity} to lead`,
      async () => (await this.metric('tenant_operator_leader')) === 1,
      {
        timeoutMs,
      },
    );
  }

  async waitUntilReady(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${this.identity} to be ready`,
      async () => (await this.get('/readyz')).status === 200,
      {
        timeoutMs,
      },
    );
  }

  /** Waits until the queue is empty and no reconcile has run for `quietMs`. */
  async waitUntilIdle(quietMs = 1_500, timeoutMs = 60_000): Promise<void> {
    let last = -1;
    let since = Date.now();
    await waitFor(
      `${this.identity} to go idle`,
      async () => {
        const count = await this.metric('tenant_operator_reconcile_duration_seconds_count');
        const depth = await this.metric('tenant_operator_queue_depth');
        if (count !== last || depth > 0) {
          last = count;
          since = Date.now();
          return false;
        }
        return Date.now() - since >= quietMs;
      },
      { timeoutMs, intervalMs: 250 },
    );
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<unknown> {
    if (this.alive) this.child.kill(signal);
    return this.exited;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
