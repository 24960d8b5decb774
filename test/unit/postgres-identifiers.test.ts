import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  databaseIdentifiersFor,
  MAX_IDENTIFIER_BYTES,
  quoteIdentifier,
  quoteLiteral,
} from '../../src/postgres/identifiers.ts';
import { generatePassword } from '../../src/postgres/password.ts';

const SAFE = /^[a-z0-9_]+$/;

function allIdentifiers(name: string): string[] {
  const ids = databaseIdentifiersFor(name);
  return [ids.database, ids.ownerRole, ...ids.loginRoles];
}

const HOSTILE = [
  'acme',
  'acme-corp',
  'acme_corp',
  'Acme',
  'ACME',
  'a"b',
  'a""b',
  "a'b",
  'x"; DROP DATABASE postgres; --',
  "x'); DROP ROLE postgres; --",
  'a;b',
  'a b',
  'a\\b',
  'ünïcødé',
  'unicode',
  '名前',
  '名字',
  '🦄',
  '🐴',
  'a.b',
  'a-b',
  'a_b',
  'acme-a',
  'acme-b',
  'acme-a-a',
  'x-0123abcd',
  'x',
  '-',
  '_',
  'é'.repeat(40),
  'a'.repeat(59),
  'a'.repeat(60),
  'a'.repeat(61),
  'a'.repeat(63),
  'a'.repeat(64),
  'a'.repeat(70),
  'a'.repeat(70) + 'b',
  'a'.repeat(63) + '-one',
  'a'.repeat(63) + '-two',
  'b'.repeat(200) + '1',
  'b'.repeat(200) + '2',
];

test('a Kubernetes-style name maps to readable identifiers', () => {
  assert.deepEqual(databaseIdentifiersFor('acme'), {
    database: 't_acme',
    ownerRole: 't_acme',
    loginRoles: ['t_acme_a', 't_acme_b'],
  });
  assert.equal(databaseIdentifiersFor('acme-corp').database, 't_acme_corp');
  assert.equal(databaseIdentifiersFor('a'.repeat(59)).database, `t_${'a'.repeat(59)}`);
});

test('every identifier is safe characters only and at most 63 bytes', () => {
  for (const name of HOSTILE) {
    for (const id of allIdentifiers(name)) {
      assert.match(id, SAFE, `${JSON.stringify(name)} -> ${id}`);
      assert.ok(Buffer.byteLength(id) <= MAX_IDENTIFIER_BYTES, `${id} is too long`);
      assert.ok(id.startsWith('t_'));
    }
  }
});

test('distinct names never share a database or a role, even across tenants', () => {
  const databases = new Map<string, string>();
  const roles = new Map<string, string>();
  for (const name of HOSTILE) {
    const ids = databaseIdentifiersFor(name);
    assert.equal(
      databases.get(ids.database),
      undefined,
      `${name} and ${databases.get(ids.database)}`,
    );
    databases.set(ids.database, name);
    // Owner and login roles live in one namespace: tenant `acme-a` must not
    // get `acme`'s login role as its owner.
    for (const role of new Set([ids.ownerRole, ...ids.loginRoles])) {
      assert.equal(roles.get(role), undefined, `${name} and ${roles.get(role)} share ${role}`);
      roles.set(role, name);
    }
  }
});

test('names that differ only after byte 63 still differ', () => {
  const one = databaseIdentifiersFor('a'.repeat(63) + '-one');
  const two = databaseIdentifiersFor('a'.repeat(63) + '-two');
  assert.notEqual(one.database, two.database);
  assert.equal(one.loginRoles[0].length, MAX_IDENTIFIER_BYTES);
  assert.ok(one.loginRoles[0].endsWith('_a'));
});

test('the mapping is stable', () => {
  assert.deepEqual(databaseIdentifiersFor('a"b'), databaseIdentifiersFor('a"b'));
  assert.match(databaseIdentifiersFor('a"b').database, /^t_a_b_[0-9a-f]{8}$/);
});

test('an empty tenant name is refused', () => {
  assert.throws(() => databaseIdentifiersFor(''), /tenant name/);
});

test('quoteIdentifier doubles quotes and refuses NUL, empty and over-long names', () => {
  assert.equal(quoteIdentifier('t_acme'), '"t_acme"');
  assert.equal(quoteIdentifier('a"b'), '"a""b"');
  assert.equal(quoteIdentifier('x"; DROP TABLE y; --'), '"x""; DROP TABLE y; --"');
  assert.throws(() => quoteIdentifier('a\0b'), /NUL/);
  assert.throws(() => quoteIdentifier(''), /empty/);
  assert.throws(() => quoteIdentifier('é'.repeat(32)), /63 bytes/);
  assert.equal(quoteIdentifier('a'.repeat(63)), `"${'a'.repeat(63)}"`);
});

test('quoteLiteral doubles quotes, escapes backslashes, refuses NUL without showing the value', () => {
  assert.equal(quoteLiteral('abc'), "'abc'");
  assert.equal(quoteLiteral("it's"), "'it''s'");
  assert.equal(quoteLiteral('a\\b'), "E'a\\\\b'");
  assert.equal(quoteLiteral("a\\'b"), "E'a\\\\''b'");
  assert.throws(
    () => quoteLiteral('secret\0value'),
    (err: Error) => /NUL/.test(err.message) && !err.message.includes('secret'),
  );
});

test('generated passwords are 256 random bits in base64url', () => {
  const a = generatePassword();
  const b = generatePassword();
  assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b);
});
