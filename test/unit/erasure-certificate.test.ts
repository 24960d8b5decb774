import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { certificateDocument, verifyCertificate } from '../../src/erasure/certificate.ts';

// The certificate's bytes and its check, with a key made here in place of
// Vault's (the integration test signs with the real Transit key).

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url').toString(
  'base64',
);
const keys = new Map([[1, raw]]);

const input = {
  tenant: 'acme',
  uid: 'u-1',
  closedAt: '2026-01-01T00:00:00Z',
  purgeAfter: '2026-03-02T00:00:00Z',
  erasure: {
    startedAt: '2026-03-02T00:00:01Z',
    completedAt: '2026-03-02T00:00:09Z',
    steps: [{ name: 'database', completedAt: '2026-03-02T00:00:02Z', removed: ['database x'] }],
  },
  operatorVersion: '0.1.0',
  keepUntil: '2031-03-02T00:00:09Z',
};

function signed(document: string, version = 1) {
  const signature = sign(null, Buffer.from(document), privateKey).toString('base64');
  return { document, signature: `vault:v${version}:${signature}` };
}

test('the same erasure gives the same bytes', () => {
  assert.equal(certificateDocument(input), certificateDocument({ ...input }));
  assert.match(
    certificateDocument(input),
    /^\{"format":"tenant-operator.erasure-certificate\/v1","tenant":"acme"/,
  );
});

test('a signed certificate verifies; a changed byte, another key version or another format does not', () => {
  const document = certificateDocument(input);
  assert.equal(verifyCertificate(signed(document), keys).tenant, 'acme');
  const good = signed(document);
  assert.throws(
    () => verifyCertificate({ ...good, document: document.replace('acme', 'acmf') }, keys),
    /does not match the document/,
  );
  assert.throws(() => verifyCertificate(signed(document, 2), keys), /no public key of version 2/);
  assert.throws(
    () => verifyCertificate({ ...good, signature: 'abc' }, keys),
    /not a Vault Transit signature/,
  );
  assert.throws(
    () => verifyCertificate(signed('{"format":"other"}'), keys),
    /not an erasure certificate/,
  );
});
