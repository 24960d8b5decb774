import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseSamples, type Sample } from './prometheus-text.ts';

// The operator as the benchmark runs it: its own process, started as the
// image starts it (`node dist/cli/main.js operator`: tsc's JavaScript, which
// hack/bench.sh builds first), so its memory is its own and is read from
// /proc. Its logs go to a file for the post-mortem of a failed run.

const ROOT = join(import.meta.dirname, '..');
const ENTRY_POINT = join(ROOT, 'dist/cli/main.js');

export interface OperatorProcessOptions {
  /** Flags after `operator`. */
  args: string[];
  /** The operator's environment: its kubeconfig, Vault address and login. */
  env: NodeJS.ProcessEnv;
  logFile: string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export class OperatorProcess {
  readonly startedAt: number;
  private readonly child: ChildProcess;
  private readonly port: number;
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    this.startedAt = performance.now();
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(options: OperatorProcessOptions): Promise<OperatorProcess> {
    if (!existsSync(ENTRY_POINT))
      throw new Error(`${ENTRY_POINT} is missing: npm run build (hack/bench.sh does)`);
    const port = await freePort();
    const log = createWriteStream(options.logFile, { flags: 'a' });
    const child = spawn(
      process.execPath,
      [
        ENTRY_POINT,
        'operator',
        '--metrics-host',
        '127.0.0.1',
        '--metrics-port',
        String(port),
        ...options.args,
      ],
      { cwd: ROOT, env: { ...options.env, LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return new OperatorProcess(child, port);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('the operator process did not start');
    return this.child.pid;
  }

  private async get(path: string): Promise<{ status: number; body: string }> {
    const url = `http://127.0.0.1:${this.port}${path}`;
    let response: Response;
    try {
      response = await fetch(url);
    } catch (err: unknown) {
      // A kept-alive connection the server closed just as it was reused
      // (ECONNRESET): once more on a new one. A process that is gone fails again.
      if ((err as { cause?: { code?: string } }).cause?.code !== 'ECONNRESET') throw err;
      response = await fetch(url);
    }
    return { status: response.status, body: await response.text() };
  }

  async metrics(): Promise<Sample[]> {
    const { status, body } = await this.get('/metrics');
    if (status !== 200) throw new Error(`/metrics answered ${status}`);
    return parseSamples(body);
  }

  /** /readyz answers 200; false while the process is starting or a watch is not live. */
  async ready(): Promise<boolean> {
    if (this.child.exitCode !== null)
      throw new Error(`the operator exited (${this.child.exitCode})`);
    try {
      return (await this.get('/readyz')).status === 200;
    } catch {
      return false;
    }
  }

  /** The kernel's view of the process's memory, KiB: VmRSS now and VmHWM, its peak. */
  async memory(): Promise<{ rssKib: number; peakKib: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const field = (name: string): number => {
      const value = new RegExp(`^${name}:\\s*(\\d+) kB`, 'm').exec(status)?.[1];
      if (value === undefined) throw new Error(`no ${name} in /proc/${this.pid}/status`);
      return Number(value);
    };
    return { rssKib: field('VmRSS'), peakKib: field('VmHWM') };
  }

  /** SIGTERM, as Kubernetes stops a pod; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return await this.exited;
  }

  /** SIGKILL: a crash, no hand-over. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
