// Times as the API writes them: RFC 3339 in UTC, whole seconds (what
// metav1.Time serializes to), so a time the operator writes compares equal
// to the same time read back, and a resync finds nothing to change.
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}
