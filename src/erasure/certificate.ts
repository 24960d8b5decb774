import { createPublicKey, verify } from 'node:crypto';
import type { TenantStatus } from '../api/tenant.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { Transit } from '../vault/transit.ts';

// The erasure certificate: what was erased, when, and by which operator,
// signed with an ed25519 key that lives in Vault Transit (the operator can
// sign with it, never read its private half). Anyone with the public key
// (readable from Vault, or kept beside the certificate) can verify it
// offline: `tenant-operator certificate verify FILE`. The document is the
// exact bytes that were signed; it is stored as text, never re-serialized.

export const CERTIFICATE_FORMAT = 'tenant-operator.erasure-certificate/v1';
/** The Transit key the certificates are signed with (made by hack/vault-config.sh). */
export const SIGNING_KEY = 'erasure-certificates';

export interface SignedCertificate {
  /** The certificate's JSON text, exactly as signed. */
  document: string;
  /** Vault's signature: `vault:v<key version>:<base64>`. */
  signature: string;
}

export interface CertificateInput {
  tenant: string;
  uid: string;
  closedAt: string | undefined;
  purgeAfter: string | undefined;
  erasure: NonNullable<TenantStatus['erasure']>;
  operatorVersion: string;
  /** Until when the copy in the store is kept (the legal period). */
  keepUntil: string;
}

/** The document, fields in a fixed order so that the same erasure gives the same bytes. */
export function certificateDocument(input: CertificateInput): string {
  return JSON.stringify({
    format: CERTIFICATE_FORMAT,
    tenant: input.tenant,
    uid: input.uid,
    closedAt: input.closedAt ?? null,
    purgeAfter: input.purgeAfter ?? null,
    trigger: input.erasure.trigger ?? 'RetentionExpired',
    startedAt: input.erasure.startedAt ?? null,
    completedAt: input.erasure.completedAt ?? null,
    steps: (input.erasure.steps ?? []).map((s) => ({
      name: s.name,
      completedAt: s.completedAt,
      removed: s.removed,
    })),
    operatorVersion: input.operatorVersion,
    keepUntil: input.keepUntil,
  });
}

export async function signCertificate(
  transit: Transit,
  document: string,
): Promise<SignedCertificate> {
  const { signature } = await transit.sign(SIGNING_KEY, Buffer.from(document, 'utf8'));
  return { document, signature };
}

/**
 * Checks the signature against the public key of the version it names.
 * Throws with the reason; answers the parsed document when it holds.
 */
export function verifyCertificate(
  certificate: SignedCertificate,
  publicKeys: Map<number, string>,
): Record<string, unknown> {
  const match = /^vault:v(\d+):([A-Za-z0-9+/=]+)$/.exec(certificate.signature);
  if (!match) throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'not a Vault Transit signature');
  const version = Number(match[1]);
  const publicKey = publicKeys.get(version);
  if (!publicKey)
    throw new OperatorError(
      ERROR_CODES.API_NOT_FOUND,
      `no public key of version ${version} of Transit key ${SIGNING_KEY}`,
    );
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey, 'base64').toString('base64url') },
    format: 'jwk',
  });
  const valid = verify(
    null,
    Buffer.from(certificate.document, 'utf8'),
    key,
    Buffer.from(match[2] ?? '', 'base64'),
  );
  if (!valid)
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      'the signature does not match the document: it was changed after signing, or signed by another key',
    );
  const parsed = JSON.parse(certificate.document) as Record<string, unknown>;
  if (parsed.format !== CERTIFICATE_FORMAT)
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, `not an erasure certificate`);
  return parsed;
}

/** Where certificates' copies live in a store: outside every tenant's prefix. */
export const CERTIFICATE_PREFIX = 'certificates/';

export function certificateKey(tenant: string, uid: string): string {
  return `${CERTIFICATE_PREFIX}${tenant}-${uid}.json`;
}
