import { randomBytes } from 'node:crypto';
import {
  mkdir,
  open,
  opendir,
  readFile,
  rename,
  rmdir,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { assertSafeKey, assertSafePrefix, normalizeStorePrefix } from './keys.ts';
import type { AbandonedWrite, BackupObjectStore, StoredObject } from './store.ts';

// A BackupStore on a mounted filesystem (a PersistentVolume, an NFS share).
// An object is a file at <root>/<prefix>/<key>. It appears only complete: it
// is written to a temporary file beside it (".<name>.tmp-<random>"), flushed
// to disk, and renamed over the key, which is atomic within one directory;
// the directory is flushed too, so the rename itself survives a power cut. A
// crash leaves at most a temporary file, which list() never shows (keys.ts
// forbids '.'-names as keys) and which cleanupTemporaryFiles() can remove.
// Files are 0600 and directories 0700: backups are readable by the operator's
// user only, whatever the umask.

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const TEMP_MARK = '.tmp-';

function isTemporaryName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARK);
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function storeError(action: string, key: string, err: unknown): OperatorError {
  if (err instanceof OperatorError) return err;
  // A system error's message names the code and the path (the operator's own
  // configuration plus a checked key, no secret); anything else is the
  // source stream's own failure, passed on so the caller sees why.
  const cause = err instanceof Error ? err.message : String(err);
  return new OperatorError(
    ERROR_CODES.API_ERROR,
    `filesystem backup store: ${action} ${key}: ${cause}`,
    { cause: err },
  );
}

export class FilesystemStore implements BackupObjectStore {
  readonly location: string;
  private readonly base: string;

  constructor(options: { root: string; prefix?: string }) {
    const prefix = normalizeStorePrefix(options.prefix);
    this.base = join(options.root, prefix);
    this.location = pathToFileURL(this.base).href;
  }

  private path(key: string): string {
    assertSafeKey(key);
    return join(this.base, key);
  }

  async putStream(key: string, body: Readable): Promise<number> {
    const target = this.path(key);
    const temp = join(
      dirname(target),
      `.${basename(target)}${TEMP_MARK}${randomBytes(6).toString('hex')}`,
    );
    let file: FileHandle | undefined;
    let bytes = 0;
    try {
      file = await this.createExclusive(temp);
      const handle = file;
      await pipeline(body, async (source: AsyncIterable<Buffer>) => {
        for await (const part of source) {
          await handle.write(part);
          bytes += part.length;
        }
      });
      await handle.sync();
      await handle.close();
      file = undefined;
      await rename(temp, target);
      await syncDirectory(dirname(target));
      return bytes;
    } catch (err: unknown) {
      body.destroy();
      await file?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw storeError('writing', key, err);
    }
  }

  /**
   * Opens a new file, creating its directories. Retried because delete()
   * removes directories it empties: one may vanish between mkdir and open.
   */
  private async createExclusive(path: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
      try {
        return await open(path, 'wx', FILE_MODE);
      } catch (err: unknown) {
        if (errnoCode(err) !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    await this.putStream(key, Readable.from([data]));
  }

  async getStream(key: string): Promise<Readable> {
    const path = this.path(key);
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (err: unknown) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR')
        throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `backup object ${key} does not exist`);
      throw storeError('reading', key, err);
    }
    const stat = await file.stat();
    if (!stat.isFile()) {
      await file.close();
      throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `backup object ${key} does not exist`);
    }
    return file.createReadStream();
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    const path = this.path(key);
    try {
      return await readFile(path);
    } catch (err: unknown) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw storeError('reading', key, err);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    assertSafePrefix(prefix);
    // Walk only the directory the prefix points into, not the whole store.
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? '' : prefix.slice(0, slash + 1);
    yield* this.walk(start, prefix);
  }

  /**
   * The subdirectories of a directory, and the regular files `wanted` keeps.
   * Symbolic links and other special files are never objects: following one
   * could leave the root. A directory that is not there has no entries.
   */
  private async entries(
    directoryKey: string,
    wanted: (fileName: string) => boolean,
  ): Promise<{ name: string; directory: boolean }[]> {
    let entries;
    try {
      entries = await opendir(join(this.base, directoryKey));
    } catch (err: unknown) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
      throw storeError('listing', directoryKey || '/', err);
    }
    const found: { name: string; directory: boolean }[] = [];
    for await (const entry of entries) {
      if (entry.isDirectory()) found.push({ name: entry.name, directory: true });
      else if (entry.isFile() && wanted(entry.name))
        found.push({ name: entry.name, directory: false });
    }
    return found;
  }

  private async *walk(directoryKey: string, prefix: string): AsyncGenerator<StoredObject> {
    const names = await this.entries(directoryKey, (name) => !isTemporaryName(name));
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { name, directory } of names) {
      const key = `${directoryKey}${name}`;
      if (directory) {
        const below = `${key}/`;
        if (below.startsWith(prefix) || prefix.startsWith(below)) yield* this.walk(below, prefix);
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      const info = await stat(join(this.base, key)).catch(() => undefined);
      if (info === undefined) continue; // deleted meanwhile
      yield { key, size: info.size, lastModified: info.mtime };
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const paths = keys.map((key) => this.path(key));
    for (const [index, path] of paths.entries()) {
      try {
        await unlink(path);
      } catch (err: unknown) {
        const code = errnoCode(err);
        if (code !== 'ENOENT' && code !== 'ENOTDIR')
          throw storeError('deleting', keys[index] ?? '', err);
      }
      await this.removeEmptyParents(dirname(path));
    }
  }

  /** A deleted backup leaves no empty directories behind, up to the store's base. */
  private async removeEmptyParents(directory: string): Promise<void> {
    let current = directory;
    while (current.startsWith(this.base) && current.length > this.base.length) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or gone): stop climbing
      }
      current = dirname(current);
    }
  }

  /** Removes temporary files left by writes that crashed, older than `olderThanMs`. */
  async cleanupTemporaryFiles(olderThanMs: number): Promise<number> {
    return (await this.removeAbandonedWrites('', new Date(Date.now() - olderThanMs))).length;
  }

  /**
   * Temporary files under `prefix` not written to since `before`: a writer
   * that is alive keeps its file's mtime fresh, so an old one is a crash's.
   */
  async removeAbandonedWrites(prefix: string, before: Date): Promise<AbandonedWrite[]> {
    assertSafePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const removed: AbandonedWrite[] = [];
    for await (const found of this.temporaryFiles(start)) {
      if (!found.key.startsWith(prefix) || found.at.getTime() >= before.getTime()) continue;
      try {
        await unlink(join(this.base, found.key));
      } catch (err: unknown) {
        if (errnoCode(err) === 'ENOENT') continue; // its writer finished or removed it meanwhile
        throw storeError('removing the temporary file', found.key, err);
      }
      removed.push(found);
      await this.removeEmptyParents(dirname(join(this.base, found.key)));
    }
    return removed;
  }

  private async *temporaryFiles(directoryKey: string): AsyncGenerator<AbandonedWrite> {
    const found = await this.entries(directoryKey, isTemporaryName);
    for (const { name, directory } of found) {
      const key = `${directoryKey}${name}`;
      if (directory) {
        yield* this.temporaryFiles(`${key}/`);
        continue;
      }
      const info = await stat(join(this.base, key)).catch(() => undefined);
      if (info !== undefined) yield { key, at: info.mtime };
    }
  }
}

/** fsync on a directory makes a rename in it durable. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
