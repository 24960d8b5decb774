import type { Logger } from 'pino';
import type { BackupObjectStore } from '../backup/store.ts';
import { toOperatorError } from '../errors.ts';
import { CERTIFICATE_PREFIX } from './certificate.ts';

// Erasure certificates' copies are kept for the legal period written into
// each one (`keepUntil`, from --certificate-retention when it was signed),
// then removed: keeping proof of an erasure longer than the law asks is
// keeping personal data (the tenant's name) longer than needed. A copy that
// cannot be read, or names no valid time, is never removed: it is left for
// a person to look at, and logged.

export interface StoreSource {
  names(): string[];
  get(name: string): Promise<BackupObjectStore>;
}

export interface RemovedCertificate {
  store: string;
  key: string;
  keepUntil: string;
}

/** When a copy may go; undefined when it cannot be read as a certificate with a valid keepUntil. */
function keepUntilOf(bytes: Buffer): string | undefined {
  try {
    const copy = JSON.parse(bytes.toString('utf8')) as { document?: unknown };
    if (typeof copy.document !== 'string') return undefined;
    const document = JSON.parse(copy.document) as { keepUntil?: unknown };
    const keepUntil = document.keepUntil;
    return typeof keepUntil === 'string' && Number.isFinite(Date.parse(keepUntil))
      ? keepUntil
      : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the copies whose legal period has ended, in every store; answers which. */
export async function removeExpiredCertificates(
  stores: StoreSource,
  now: Date,
  log: Logger,
): Promise<RemovedCertificate[]> {
  const removed: RemovedCertificate[] = [];
  for (const name of stores.names()) {
    try {
      const store = await stores.get(name);
      const expired: RemovedCertificate[] = [];
      for await (const object of store.list(CERTIFICATE_PREFIX)) {
        const bytes = await store.getBytes(object.key);
        if (!bytes) continue;
        const keepUntil = keepUntilOf(bytes);
        if (keepUntil === undefined) {
          log.warn({ store: name, key: object.key }, 'not a readable erasure certificate; left');
          continue;
        }
        if (Date.parse(keepUntil) < now.getTime())
          expired.push({ store: name, key: object.key, keepUntil });
      }
      if (expired.length === 0) continue;
      await store.delete(expired.map((e) => e.key));
      removed.push(...expired);
    } catch (err: unknown) {
      // One store down must not keep the others' expired copies.
      log.warn({ store: name, err: toOperatorError(err).message }, 'certificate expiry failed');
    }
  }
  for (const copy of removed)
    log.info(copy, 'erasure certificate copy removed: its legal period has ended');
  return removed;
}
