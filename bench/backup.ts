import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { tenantPrefix } from '../src/backup/layout.ts';
import { pgEnvironment, type PgTarget } from '../src/backup/pg-tools.ts';
import { VaultClient } from '../src/vault/client.ts';
import { Transit } from '../src/vault/transit.ts';
import type { ChildReport } from './backup-child.ts';
import {
  createDatabase,
  buildSource,
  dropDatabase,
  fingerprint,
  type SourceDatabase,
} from './backup-source.ts';
import {
  openBenchStore,
  superuserTarget,
  TENANT,
  TRANSIT_KEY,
  type StoreKind,
} from './backup-stack.ts';
import { watchProcessTree, type ProcessUsage } from './process-usage.ts';
import { printTable } from './support.ts';

// Our encrypted backup of a ~1 GB database (pg_dump -Fc, AES-256-GCM chunks
// under a Vault Transit data key, streamed to a filesystem or S3 store)
// against raw `pg_dump -Fc > /dev/null`, and our restore (every chunk
// authenticated in a first read, then pg_restore --single-transaction from a
// second) against raw `pg_restore -d` from a dump file. Ours runs as its own
// process (bench/backup-child.ts), as it does when deployed, so its peak RSS
// is its own. Each run alternates the order, so a warm cache favours no side;
// medians are reported. Every restored database must match the source.

const SIZE_MB = Number(process.env.BENCH_BACKUP_MB ?? 1024);
const RUNS = Number(process.env.BENCH_BACKUP_RUNS ?? 2);
const SOURCE_DB = 'bench_backup_src';
const RESTORE_DB = 'bench_backup_restore';
const STORES: StoreKind[] = ['filesystem', 's3'];

interface Measured {
  wallMs: number;
  usage: ProcessUsage;
  stdout: string;
}

/** Runs a command to completion, timing it and sampling its process tree (itself filed as `rootName`). */
function runMeasured(
  rootName: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  stdoutTo: 'pipe' | number,
): Promise<Measured> {
  const start = performance.now();
  const child = spawn(command, args, { env, stdio: ['ignore', stdoutTo, 'pipe'] });
  const watch = watchProcessTree(child.pid ?? -1, rootName);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const wallMs = performance.now() - start;
      void watch.stop().then((usage) => {
        if (code === 0) resolve({ wallMs, usage, stdout });
        else reject(new Error(`${command} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
      });
    });
  });
}

function sampled(figures: Map<string, number>, name: string): number {
  const value = figures.get(name);
  if (value === undefined) throw new Error(`no sample of ${name}`);
  return value;
}

async function rawDump(target: PgTarget, output: number): Promise<Measured> {
  const environment = await pgEnvironment(target);
  try {
    return await runMeasured(
      'pg_dump',
      'pg_dump',
      ['--format=custom', '--no-password'],
      environment.env,
      output,
    );
  } finally {
    await environment.dispose();
  }
}

async function rawRestore(target: PgTarget, file: string): Promise<Measured> {
  const environment = await pgEnvironment(target);
  try {
    return await runMeasured(
      'pg_restore',
      'pg_restore',
      ['--no-password', `--dbname=${target.database}`, file],
      environment.env,
      'pipe',
    );
  } finally {
    await environment.dispose();
  }
}

interface OursRun {
  measured: Measured;
  report: ChildReport;
}

async function ours(args: string[]): Promise<OursRun> {
  const measured = await runMeasured(
    'node',
    process.execPath,
    [join(import.meta.dirname, 'backup-child.ts'), ...args],
    process.env,
    'pipe',
  );
  return { measured, report: JSON.parse(measured.stdout) as ChildReport };
}

/** One figure over the runs: median, and each run. */
class Figure {
  readonly values: number[] = [];
  add(value: number): void {
    this.values.push(value);
  }
  median(): number {
    const sorted = [...this.values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  }
  max(): number {
    return Math.max(...this.values);
  }
}

const seconds = (f: Figure) =>
  `${(f.median() / 1000).toFixed(1)} s (runs ${f.values.map((v) => (v / 1000).toFixed(1)).join(', ')})`;
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const ratio = (ours: Figure, raw: Figure) => `${(ours.median() / raw.median()).toFixed(2)}x`;

interface Side {
  time: Figure;
  /** In-process time (ours): without node's start-up. */
  work: Figure;
  nodePeak: Figure;
  nodeLoaded: Figure;
  nodeCpu: Figure;
  toolPeak: Figure;
  toolCpu: Figure;
}

/** The figures of one run of pg_dump or pg_restore (`tool`), and of our node process if any. */
function record(figures: Side, measured: Measured, tool: string, report?: ChildReport): void {
  figures.time.add(measured.wallMs);
  figures.toolPeak.add(sampled(measured.usage.peakKib, tool));
  figures.toolCpu.add(sampled(measured.usage.cpuMs, tool));
  if (!report) return;
  figures.work.add(report.workMs);
  figures.nodePeak.add(Math.max(report.peakKib, sampled(measured.usage.peakKib, 'node')));
  figures.nodeLoaded.add(report.loadedKib);
  figures.nodeCpu.add(sampled(measured.usage.cpuMs, 'node'));
}

function side(): Side {
  return {
    time: new Figure(),
    work: new Figure(),
    nodePeak: new Figure(),
    nodeLoaded: new Figure(),
    nodeCpu: new Figure(),
    toolPeak: new Figure(),
    toolCpu: new Figure(),
  };
}

const cpu = (f: Figure) => `${(f.median() / 1000).toFixed(1)} s`;

/** Raw against ours, for each store: time, in-process time, peak RSS, CPU and the ratio. */
function comparison(
  rawLabel: string,
  tool: string,
  raw: Side,
  ours: Map<StoreKind, Side>,
  oursLabel: string,
): [string, string][] {
  const rows: [string, string][] = [
    [
      rawLabel,
      `${seconds(raw.time)}; ${tool} peak RSS ${mib(raw.toolPeak.max())}, CPU ${cpu(raw.toolCpu)}`,
    ],
  ];
  for (const [store, f] of ours) {
    rows.push(
      [
        `ours: ${oursLabel} ${store}`,
        `${seconds(f.time)}; in-process ${(f.work.median() / 1000).toFixed(1)} s`,
      ],
      [
        '  peak RSS',
        `node ${mib(f.nodePeak.max())} (${mib(f.nodeLoaded.max())} of it once loaded), ${tool} ${mib(f.toolPeak.max())}`,
      ],
      ['  CPU', `node ${cpu(f.nodeCpu)}, ${tool} ${cpu(f.toolCpu)}`],
      [
        `  ours / raw ${tool}`,
        `${ratio(f.time, raw.time)}${tool === 'pg_dump' ? ' (aim < 1.2)' : ''}`,
      ],
    );
  }
  return rows;
}

/** Alternates the order run by run: forwards, then backwards. */
function inOrder<T>(items: T[], run: number): T[] {
  return run % 2 === 0 ? items : [...items].reverse();
}

export async function benchBackup(): Promise<boolean> {
  // The real binaries, not Debian's pg_wrapper script: the memory sampled is
  // then pg_dump's own, for both sides.
  if (process.env.PG_BIN_DIR)
    process.env.PATH = `${process.env.PG_BIN_DIR}${delimiter}${process.env.PATH ?? ''}`;
  const admin = superuserTarget('postgres');
  const source = superuserTarget(SOURCE_DB);
  const restoreTarget = superuserTarget(RESTORE_DB);
  const transit = new Transit(VaultClient.fromEnv());
  const tenantUid = randomUUID();
  const scratch = await mkdtemp(join(tmpdir(), 'bench-backup-'));
  const storeRoot = join(scratch, 'store');
  const problems: string[] = [];
  try {
    await transit.ensureKey(TRANSIT_KEY);
    await createDatabase(admin, SOURCE_DB);
    const built: SourceDatabase = await buildSource(source, SIZE_MB * 1024 * 1024);
    const expected = await fingerprint(source);
    const dumpFile = join(scratch, 'raw.dump');
    const file = openSync(dumpFile, 'w');
    try {
      await rawDump(source, file);
    } finally {
      closeSync(file);
    }
    const rawDumpBytes = (await stat(dumpFile)).size;

    // Backups.
    const rawBackup = side();
    const oursBackup = new Map(STORES.map((s) => [s, side()]));
    const backupIds = new Map<StoreKind, string>();
    let stored = { bytes: 0, dumpBytes: 0 };
    for (let run = 0; run < RUNS; run++) {
      for (const who of inOrder(['raw', ...STORES] as const, run)) {
        if (who === 'raw') {
          const devNull = openSync('/dev/null', 'w');
          try {
            record(rawBackup, await rawDump(source, devNull), 'pg_dump');
          } finally {
            closeSync(devNull);
          }
          continue;
        }
        const { measured, report } = await ours(['backup', who, storeRoot, SOURCE_DB, tenantUid]);
        record(oursBackup.get(who)!, measured, 'pg_dump', report);
        stored = { bytes: report.storedBytes ?? 0, dumpBytes: report.dumpBytes ?? 0 };
        if (!backupIds.has(who)) backupIds.set(who, report.backupId);
        if (JSON.stringify(report.tables) !== JSON.stringify(expected.counts))
          problems.push(`backup to ${who}: the manifest's row counts differ from the source's`);
      }
    }

    // Restores, each into a fresh empty database, checked against the source.
    const rawRestoreSide = side();
    const oursRestore = new Map(STORES.map((s) => [s, side()]));
    for (let run = 0; run < RUNS; run++) {
      for (const who of inOrder(['raw', ...STORES] as const, run)) {
        await createDatabase(admin, RESTORE_DB);
        if (who === 'raw') {
          record(rawRestoreSide, await rawRestore(restoreTarget, dumpFile), 'pg_restore');
        } else {
          const { measured, report } = await ours([
            'restore',
            who,
            storeRoot,
            RESTORE_DB,
            tenantUid,
            backupIds.get(who)!,
          ]);
          record(oursRestore.get(who)!, measured, 'pg_restore', report);
        }
        if ((await fingerprint(restoreTarget)).text !== expected.text)
          problems.push(
            `restore (${who}, run ${run + 1}): the restored database differs from the source`,
          );
        await dropDatabase(admin, RESTORE_DB);
      }
    }

    const rows: [string, string][] = [
      [
        'source database (pg_database_size)',
        `${mb(built.bytes)} (asked ${SIZE_MB} MiB; built in ${(built.buildMs / 1000).toFixed(0)} s)`,
      ],
      ['tables (rows)', expected.counts.map((c) => `${c.table} ${c.rows}`).join(', ')],
      [
        'dump size',
        `raw -Fc ${mb(rawDumpBytes)}; ours ${mb(stored.dumpBytes)} plaintext, ${mb(stored.bytes)} stored`,
      ],
      ['runs (order alternated)', String(RUNS)],
      ...comparison('raw pg_dump -Fc > /dev/null', 'pg_dump', rawBackup, oursBackup, 'backup to'),
      ...comparison(
        'raw pg_restore -d (dump file)',
        'pg_restore',
        rawRestoreSide,
        oursRestore,
        'restore (reads twice) from',
      ),
    ];
    const restores = RUNS * (STORES.length + 1);
    rows.push([
      'restored databases equal to the source',
      `${restores - problems.filter((p) => p.startsWith('restore')).length}/${restores}`,
    ]);
    printTable(
      'backup benchmark (pg_dump -Fc, AES-256-GCM under a Vault Transit data key; local PostgreSQL 15, Versity Gateway S3)',
      rows,
    );
    for (const problem of problems) console.log(`  PROBLEM: ${problem}`);
    const figures = [rawBackup, rawRestoreSide, ...oursBackup.values(), ...oursRestore.values()];
    const broken = figures.some((f) => !Number.isFinite(f.time.median()) || f.time.median() <= 0);
    return problems.length === 0 && !broken;
  } finally {
    await dropDatabase(admin, RESTORE_DB).catch(() => undefined);
    await dropDatabase(admin, SOURCE_DB).catch(() => undefined);
    for (const kind of STORES) {
      const store = openBenchStore(kind, storeRoot);
      const keys: string[] = [];
      for await (const object of store.list(tenantPrefix(TENANT, tenantUid))) keys.push(object.key);
      await store.delete(keys);
    }
    await rm(scratch, { recursive: true, force: true });
    await transit.deleteKey(TRANSIT_KEY);
  }
}

if (import.meta.main) process.exitCode = (await benchBackup()) ? 0 : 1;
