import { openBackup, restoreBackup } from '../src/backup/restore.ts';
import { runBackup } from '../src/backup/run.ts';
import { VaultClient } from '../src/vault/client.ts';
import { Transit } from '../src/vault/transit.ts';
import {
  openBenchStore,
  superuserTarget,
  TENANT,
  TRANSIT_KEY,
  type StoreKind,
} from './backup-stack.ts';
import { ownPeakKib } from './process-usage.ts';

// One backup or one restore, in a process of its own, so that its memory is
// measured the way it runs when deployed (the backup CronJob's process), not
// mixed with the benchmark's. Prints one JSON line; the benchmark reads it.
//
//   node bench/backup-child.ts backup  filesystem|s3 STORE_ROOT DATABASE TENANT_UID
//   node bench/backup-child.ts restore filesystem|s3 STORE_ROOT DATABASE TENANT_UID BACKUP_ID
//
// Connection settings, Vault and S3 credentials come from the environment.

export interface ChildReport {
  /** Inside the process: runBackup, or openBackup + restoreBackup. */
  workMs: number;
  /** This process's own peak RSS (VmHWM), KiB. */
  peakKib: number;
  /** Its peak RSS once its modules were loaded, before any work: what the work itself adds is the difference. */
  loadedKib: number;
  backupId: string;
  storedBytes?: number;
  dumpBytes?: number;
  tables?: { table: string; rows: number }[];
}

function storeKind(value: string | undefined): StoreKind {
  if (value === 'filesystem' || value === 's3') return value;
  throw new Error(`store must be filesystem or s3, not ${value}`);
}

function required(value: string | undefined, what: string): string {
  if (!value) throw new Error(`missing ${what}`);
  return value;
}

// Imports are evaluated before this module's body: this is the cost of node
// and the code alone (type stripping included, as deployed).
const loadedKib = await ownPeakKib();

async function main(argv: string[]): Promise<ChildReport> {
  const [mode, kind, root, database, tenantUid, backupId] = argv;
  const store = openBenchStore(storeKind(kind), required(root, 'store root'));
  const target = superuserTarget(required(database, 'database'));
  const uid = required(tenantUid, 'tenant uid');
  const transit = new Transit(VaultClient.fromEnv());
  const start = performance.now();
  if (mode === 'backup') {
    const manifest = await runBackup(
      { store, transitKey: TRANSIT_KEY, newDataKey: () => transit.generateDataKey(TRANSIT_KEY) },
      { tenant: TENANT, tenantUid: uid, server: 'pg-eu', target },
    );
    return {
      workMs: performance.now() - start,
      peakKib: await ownPeakKib(),
      loadedKib,
      backupId: manifest.backupId,
      storedBytes: manifest.data.bytes,
      dumpBytes: manifest.data.plaintextBytes,
      tables: manifest.tables,
    };
  }
  if (mode === 'restore') {
    const id = required(backupId, 'backup id');
    const opened = await openBackup(
      {
        store,
        transitKey: TRANSIT_KEY,
        unwrapDataKey: (wrapped) => transit.decryptDataKey(TRANSIT_KEY, wrapped),
      },
      TENANT,
      uid,
      id,
    );
    try {
      await restoreBackup(store, opened, target, { clean: false });
    } finally {
      opened.dispose();
    }
    return {
      workMs: performance.now() - start,
      peakKib: await ownPeakKib(),
      loadedKib,
      backupId: id,
    };
  }
  throw new Error(`mode must be backup or restore, not ${mode}`);
}

process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
