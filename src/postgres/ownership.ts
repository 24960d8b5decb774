import { ERROR_CODES, OperatorError } from '../errors.ts';

// Which Tenant a role belongs to. Every role the operator creates carries a
// comment naming its Tenant and that Tenant's uid; a database is the
// tenant's when its owner role carries that comment. A same-named object
// without it (made by hand, by another tool, or left by an earlier Tenant of
// the same name) is never adopted, altered or dropped. Tenants cannot forge
// the comment: COMMENT ON ROLE needs CREATEROLE, which their roles lack.

const PREFIX = 'managed-by: tenant-operator';
/** A Kubernetes uid; nothing that could end the comment early or look like another field. */
const UID = /^[A-Za-z0-9-]{1,64}$/;

/** The comment a role of tenant `tenant` (whose Tenant has uid `uid`) carries. */
export function ownershipMarker(tenant: string, uid: string): string {
  if (tenant.length === 0 || !UID.test(uid)) {
    throw new OperatorError(
      ERROR_CODES.INTERNAL,
      'an ownership marker needs the tenant name and its Tenant uid',
    );
  }
  // The uid comes last and has no ';' or ' ', so no other (tenant, uid) pair
  // spells the same text, whatever the tenant name holds.
  return `${PREFIX}; tenant: ${tenant}; uid: ${uid}`;
}

/** Refusal to touch an object that carries no marker of this tenant. Names the object, never its content. */
export function foreignObject(object: string, claim: string): OperatorError {
  const uid = /uid: (\S+)$/.exec(claim)?.[1] ?? '?';
  return new OperatorError(
    ERROR_CODES.FOREIGN_OBJECT,
    `${object} exists but carries no marker of this tenant (uid ${uid}); refusing to take it over`,
  );
}
