// "Does the live object already say everything we want it to say?" The API
// server adds defaults and other managers' fields, so equality is too strict;
// the desired object must be contained in the live one. Lists must match item
// for item, since an extra item in a list of rules changes what it means.

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
