import { ERROR_CODES, OperatorError } from '../errors.ts';

// The one check every store applies to an object key before it touches
// storage, so that no key (from a manifest, a CLI flag, a tenant's name) can
// reach outside the store's prefix: on a filesystem `..` climbs out of the
// root, on S3 another tenant's prefix is just a string away.
//
// Rather than listing what is dangerous ('..', '\\', NUL, '%2e%2e', Unicode
// look-alikes...), a segment is allowed only what our own layout
// (src/backup/layout.ts) produces: DNS-label tenant names, uids, backup ids,
// "data", "manifest.json". A segment may not start with '.': that refuses '.'
// and '..', and keeps `.`-names free for the filesystem store's temporary files.

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
/** S3's own limit on a key, in bytes; our keys are ASCII. */
const MAX_KEY_LENGTH = 1024;

function refuse(what: string, key: string, why: string): never {
  // JSON.stringify shows control characters as escapes, so the message stays one readable line.
  throw new OperatorError(
    ERROR_CODES.INVALID_SPEC,
    `unsafe backup object ${what} ${JSON.stringify(key)}: ${why}`,
  );
}

function checkSegments(what: string, key: string, segments: readonly string[]): void {
  for (const segment of segments) {
    if (segment === '') refuse(what, key, 'empty path segment (leading, trailing or double "/")');
    if (segment.startsWith('.'))
      refuse(what, key, `segment ${JSON.stringify(segment)} starts with "."`);
    if (!SEGMENT.test(segment))
      refuse(
        what,
        key,
        `segment ${JSON.stringify(segment)} has characters other than A-Z a-z 0-9 . _ -`,
      );
  }
}

/** An object key: "tenants/acme/<uid>/<backup id>/data". */
export function assertSafeKey(key: string): void {
  if (key.length === 0) refuse('key', key, 'empty');
  if (key.length > MAX_KEY_LENGTH) refuse('key', key, `longer than ${MAX_KEY_LENGTH} characters`);
  checkSegments('key', key, key.split('/'));
}

/**
 * A listing prefix: "" (everything), whole segments ending in "/"
 * ("tenants/acme/"), or a key's beginning ("tenants/ac").
 */
export function assertSafePrefix(prefix: string): void {
  if (prefix === '') return;
  if (prefix.length > MAX_KEY_LENGTH)
    refuse('prefix', prefix, `longer than ${MAX_KEY_LENGTH} characters`);
  const body = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  checkSegments('prefix', prefix, body.split('/'));
}

/**
 * A store's own prefix from its configuration ("backups/prod", with or without
 * a trailing '/'), as segments to put before every key; "" for none.
 */
export function normalizeStorePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '' || prefix === '/') return '';
  const trimmed = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  assertSafeKey(trimmed);
  return `${trimmed}/`;
}
