// "Does the live object already say everything we want it to say?", for
// objects in systems that answer with many fields of their own we cannot
// predict (a Vault role read back lists every default). The desired object
// must be contained in the live one; lists must match item for item, since
// an extra item in a list of rules changes what it means.
//
// Not for Kubernetes objects the operator owns: there a field someone ADDS
// (an ingress rule, a RoleBinding subject, quota scopes) is exactly the
// drift that opens a tenant up, and containment cannot see it. Those are
// compared exactly, see owned-fields.ts.

export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (Array.isArray(desired)) {
    return (
      Array.isArray(live) &&
      desired.length === live.length &&
      desired.every((item, index) => isSubset(item, live[index]))
    );
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    const liveRecord = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(
      ([key, value]) => value === undefined || isSubset(value, liveRecord[key]),
    );
  }
  return false;
}
