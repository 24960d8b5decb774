import { readdir, readFile } from 'node:fs/promises';

// Peak resident memory of a process and everything it starts, by command
// name, read from /proc while they run. VmHWM is the kernel's own high-water
// mark of a process's RSS, so a sample taken late in its life is its peak
// so far; sampling often only matters for the last moments before it exits.

const SAMPLE_MS = 50;

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

export interface MemoryWatch {
  /** Stops sampling; answers the peak RSS in KiB per command name (the largest process of that name). */
  stop(): Promise<Map<string, number>>;
}

/** Samples the process tree under `root` until stopped. */
export function watchPeakMemory(root: number): MemoryWatch {
  const peaks = new Map<string, number>();
  let running = true;
  const sample = async (): Promise<void> => {
    for (const pid of await treeOf(root)) {
      const mark = await highWaterMark(pid);
      if (mark && mark.kib > (peaks.get(mark.name) ?? 0)) peaks.set(mark.name, mark.kib);
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
      return peaks;
    },
  };
}

/** This process's own VmHWM in KiB (exact: read by the process itself). */
export async function ownPeakKib(): Promise<number> {
  const mark = await highWaterMark(process.pid);
  if (!mark) throw new Error('no VmHWM in /proc/self/status');
  return mark.kib;
}
