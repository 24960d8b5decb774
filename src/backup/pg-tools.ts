import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { assertTlsDecided, type ServerConnection } from '../postgres/connection.ts';

// pg_dump and pg_restore, run as child processes. Connection settings go in
// the child's environment (libpq's PG* variables), never in argv, so the
// password does not show in a process list; the CA goes in a 0600 file in a
// private temporary directory, because libpq only reads it from a file.
// TLS is verify-full whenever a CA is given, as for every other connection.

/** A server, a role and a database: what pg_dump, pg_restore and the count queries connect to. */
export type PgTarget = ServerConnection & { database: string };

export interface PgEnvironment {
  env: NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

const STDERR_KEEP_BYTES = 4_096;

export async function pgEnvironment(target: PgTarget): Promise<PgEnvironment> {
  assertTlsDecided(target);
  const dir = await mkdtemp(join(tmpdir(), 'tenant-operator-pg-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGPASSWORD: target.password,
    PGDATABASE: target.database,
    PGCONNECT_TIMEOUT: '10',
    PGAPPNAME: 'tenant-operator-backup',
    // No ~/.pgpass, ~/.psqlrc or service file of whoever runs us.
    PGPASSFILE: join(dir, 'none'),
    PGSYSCONFDIR: dir,
  };
  if (target.caCertificate !== undefined) {
    const caFile = join(dir, 'ca.crt');
    await writeFile(caFile, target.caCertificate, { mode: 0o600 });
    Object.assign(env, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: caFile });
  } else {
    env.PGSSLMODE = 'disable';
  }
  return { env, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** The last few KiB a tool wrote to stderr: its error message, for status and logs. */
export function stderrTail(child: ChildProcess): () => string {
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    tail = (tail + text).slice(-STDERR_KEEP_BYTES);
  });
  return () => tail.trim();
}

/** Resolves when the child exits 0; rejects naming the tool and its stderr otherwise. */
export function exited(child: ChildProcess, tool: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', (err) =>
      reject(new OperatorError(ERROR_CODES.INTERNAL, `${tool} could not start: ${err.message}`)),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new OperatorError(
            ERROR_CODES.INTERNAL,
            `${tool} failed (${signal ?? `exit ${code}`}): ${stderr() || 'no message'}`,
            { origin: 'postgres' },
          ),
        );
    });
  });
}

/** "15.18": the version of the pg_dump on PATH, recorded in every manifest. */
export async function pgDumpVersion(): Promise<string> {
  const child = spawn('pg_dump', ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  await exited(child, 'pg_dump --version', stderrTail(child));
  const version = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(out)?.[1];
  if (!version)
    throw new OperatorError(ERROR_CODES.INTERNAL, `pg_dump --version said nothing usable`);
  return version;
}
