import { readdir, readFile } from 'node:fs/promises';

// Peak resident memory and CPU time of a process and everything it starts,
// by command name, read from /proc while they run. VmHWM is the kernel's own
// high-water mark of a process's RSS, so a sample taken late in its life is
// its peak so far; CPU time only grows too. Sampling often only matters for
// the last moments before a process exits (at most SAMPLE_MS are missed).

const SAMPLE_MS = 50;
/** The kernel's USER_HZ, 100 on every Linux architecture node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

async function readText(path: string): Promise<string | undefined> {
  return await readFile(path, 'utf8').catch(() => undefined);
}

/** The process's name and VmHWM in KiB; undefined once it is gone (or a zombie). */
async function highWaterMark(pid: number): Promise<{ name: string; kib: number } | undefined> {
  const status = await readText(`/proc/${pid}/status`);
  const name = status && /^Name:\s*(\S+)/m.exec(status)?.[1];
  const kib = status && /^VmHWM:\s*(\d+) kB/m.exec(status)?.[1];
  return name && kib ? { name, kib: Number(kib) } : undefined;
}

/** User plus system CPU time in ms; undefined once the process is gone. */
async function cpuTime(pid: number): Promise<number | undefined> {
  const stat = await readText(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields?.[11]);
  const stime = Number(fields?.[12]);
  return Number.isFinite(utime + stime)
    ? ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND
    : undefined;
}

async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const lists = await Promise.all(tasks.map((t) => readText(`/proc/${pid}/task/${t}/children`)));
  return lists.flatMap((list) => (list ?? '').split(/\s+/).filter(Boolean).map(Number));
}

async function treeOf(root: number): Promise<number[]> {
  const seen: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    seen.push(pid);
    pending.push(...(await childrenOf(pid)));
  }
  return seen;
}

export interface ProcessUsage {
  /** Peak RSS in KiB per command name (the largest process of that name). */
  peakKib: Map<string, number>;
  /** CPU time (user + system) in ms per command name, summed over its processes. */
  cpuMs: Map<string, number>;
}

export interface UsageWatch {
  /** Stops sampling and answers what was seen. */
  stop(): Promise<ProcessUsage>;
}

/**
 * Samples the process tree under `root` until stopped. The root is filed
 * under `rootName`: its own name may be a thread's (node calls its main
 * thread "MainThread").
 */
export function watchProcessTree(root: number, rootName: string): UsageWatch {
  const peakKib = new Map<string, number>();
  const cpuByPid = new Map<number, { name: string; ms: number }>();
  let running = true;
  const sample = async (): Promise<void> => {
    for (const pid of await treeOf(root)) {
      const [mark, ms] = await Promise.all([highWaterMark(pid), cpuTime(pid)]);
      if (!mark) continue;
      const name = pid === root ? rootName : mark.name;
      if (mark.kib > (peakKib.get(name) ?? 0)) peakKib.set(name, mark.kib);
      if (ms !== undefined) cpuByPid.set(pid, { name, ms });
    }
  };
  const loop = (async () => {
    while (running) {
      await sample();
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      const cpuMs = new Map<string, number>();
      for (const { name, ms } of cpuByPid.values()) cpuMs.set(name, (cpuMs.get(name) ?? 0) + ms);
      return { peakKib, cpuMs };
    },
  };
}

/** This process's own VmHWM in KiB (exact: read by the process itself). */
export async function ownPeakKib(): Promise<number> {
  const mark = await highWaterMark(process.pid);
  if (!mark) throw new Error('no VmHWM in /proc/self/status');
  return mark.kib;
}
