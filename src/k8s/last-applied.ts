import type { KubeObject } from './types.ts';

// `kubectl apply` (client-side, the default) and tools that work the same
// way keep the whole object they applied as JSON in an annotation: for a
// Tenant, 300 bytes to a kilobyte, too long for the caches' string pool, and
// never read by the operator. Ten thousand Tenants applied that way would
// carry 3 to 10 MiB of it. The Tenant cache leaves it out.
//
// The `annotations` map itself stays, empty if that was all it held: the
// closure time is added to it by a JSON patch, and "add the map" in place of
// "add a key to the map" would replace the map on the server, and with it
// kubectl's annotation.

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** `object` without kubectl's last-applied annotation (the same object when it has none). */
export function withoutLastApplied<T extends KubeObject>(object: T): T {
  const annotations = object.metadata.annotations;
  if (annotations?.[LAST_APPLIED] === undefined) return object;
  const { [LAST_APPLIED]: _applied, ...others } = annotations;
  return { ...object, metadata: { ...object.metadata, annotations: others } };
}
