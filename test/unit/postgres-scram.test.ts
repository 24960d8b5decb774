import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generatePassword } from '../../src/postgres/password.ts';
import {
  MAX_VERIFY_ITERATIONS,
  parseVerifier,
  scramSha256Verifier,
  verifierAccepts,
} from '../../src/postgres/scram.ts';

// SCRAM-SHA-256 verifiers: what PostgreSQL stores instead of a password. A
// stored verifier is input the operator does not control (a login role may
// set its own), so its cost must be bounded and never paid on the event loop.

const SALT = Buffer.alloc(16, 7).toString('base64');
const KEY = Buffer.alloc(32, 9).toString('base64');

test('a SCRAM verifier accepts its password and nothing else', async () => {
  const password = generatePassword();
  const verifier = await scramSha256Verifier(password);
  assert.match(verifier, /^SCRAM-SHA-256\$4096:[^$]+\$[^:]+:.+$/);
  assert.ok(!verifier.includes(password));
  assert.equal(await verifierAccepts(verifier, password), true);
  assert.equal(await verifierAccepts(verifier, generatePassword()), false);
  assert.equal(await verifierAccepts('md5abc', password), false);
  await assert.rejects(
    scramSha256Verifier('pässword'),
    (err: Error) => !err.message.includes('pässword'),
  );
});

test('verifiers are byte-compatible with the ones PostgreSQL 15 computes', async () => {
  // Made by the server: CREATE ROLE r PASSWORD 'correct horse battery staple'.
  const fromServer =
    'SCRAM-SHA-256$4096:KJKB7Udqnq5lQWUX3EtvmA==$WOLC0gNpj2bdHS1DfPZcIQz+hxF1SuvoSYYAiiQQBIw=:0ZFsFhFf5tjUebyU11scXS8MCC6kVbJNeo6sQ2D984c=';
  assert.equal(await verifierAccepts(fromServer, 'correct horse battery staple'), true);
  assert.equal(await verifierAccepts(fromServer, 'correct horse battery stapler'), false);
  const salt = Buffer.from('KJKB7Udqnq5lQWUX3EtvmA==', 'base64');
  assert.equal(await scramSha256Verifier('correct horse battery staple', salt), fromServer);
});

test('an iteration count above the cap is refused without hashing', async () => {
  for (const iterations of [MAX_VERIFY_ITERATIONS + 1, 2 ** 30, 2 ** 31 - 1, 9_999_999_999]) {
    const hostile = `SCRAM-SHA-256$${iterations}:${SALT}$${KEY}:${KEY}`;
    assert.equal(parseVerifier(hostile), undefined, String(iterations));
    const started = performance.now();
    assert.equal(await verifierAccepts(hostile, generatePassword()), false);
    // 2^30 rounds of PBKDF2 take minutes; not hashing takes microseconds.
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 500, `${iterations} rounds: ${elapsed.toFixed(1)} ms, so it was hashed`);
  }
  assert.equal(
    parseVerifier(`SCRAM-SHA-256$${MAX_VERIFY_ITERATIONS}:${SALT}$${KEY}:${KEY}`)?.iterations,
    MAX_VERIFY_ITERATIONS,
  );
});

test('garbage, zero rounds and oversized values are not verifiers', () => {
  for (const garbage of [
    '',
    'md5' + 'f'.repeat(32),
    'SCRAM-SHA-256$garbage',
    `SCRAM-SHA-256$0:${SALT}$${KEY}:${KEY}`,
    `SCRAM-SHA-256$-5:${SALT}$${KEY}:${KEY}`,
    `SCRAM-SHA-256$4096:${SALT}$${KEY}`,
    `SCRAM-SHA-256$4096:${'A'.repeat(5_000)}$${KEY}:${KEY}`,
    `SCRAM-SHA-256$4096:${SALT}$${KEY}:${KEY}\n`,
  ]) {
    assert.equal(parseVerifier(garbage), undefined, JSON.stringify(garbage.slice(0, 40)));
  }
});

test('verification runs off the event loop', async () => {
  // At the cap, PBKDF2 takes milliseconds: long enough for the event loop to
  // turn while it runs on the thread pool. Run on the event loop, it would
  // finish (and settle the promise) before any callback scheduled after it.
  const password = generatePassword();
  const salt = Buffer.alloc(16, 3);
  const verifier = `SCRAM-SHA-256$${MAX_VERIFY_ITERATIONS}:${salt.toString('base64')}$${KEY}:${KEY}`;
  let turned = false;
  const pending = verifierAccepts(verifier, password).then((accepted) => ({ accepted, turned }));
  setImmediate(() => (turned = true));
  assert.ok(pending instanceof Promise);
  const result = await pending;
  assert.equal(result.accepted, false);
  assert.equal(result.turned, true, 'the event loop did not turn while the verifier was checked');
});
