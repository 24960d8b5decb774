import { hash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { exactQuantityValue } from './quantity.ts';
import type { KubeObject } from './types.ts';

// "Does the live object say exactly what we want it to say?" for objects
// that are wholly the operator's (a tenant's namespace, NetworkPolicies,
// RoleBinding, quota, limits). Containment is not enough: a rule added to a
// NetworkPolicy, a subject added to a RoleBinding or `scopes` added to a
// quota all keep our fields intact and still open the tenant up. So the
// comparison is exact over a projection of what we own:
//
//   - metadata.labels, annotations, ownerReferences, finalizers;
//   - every top-level field except apiVersion, kind, metadata and status
//     (spec, subjects, roleRef, ...): a field someone adds at the top level
//     is drift too.
//
// What the projection leaves out is what the API server owns: status, the
// other metadata (uid, resourceVersion, managedFields, ...), and per kind the
// few fields it sets itself (the namespace's `kubernetes.io/metadata.name`
// label and its spec.finalizers).
//
// Two normalisations make "exact" mean what the server means, so that a
// settled object compares equal and the steady state writes nothing:
//   - quantities compare by value ("1024Mi" is stored as "1Gi");
//   - an empty list or map is the same as an absent one (the server's Go
//     types drop both with omitempty), except for label selectors, where `{}`
//     means "everything" and absent does not.
// Defaults the server adds (a port's protocol, a subject's apiGroup) are
// written into the desired objects by their builders.

/** Top-level fields that are never the operator's to compare. */
const SERVER_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'status']);

/** Per kind, what the server writes itself: compared never, kept from live on replace. */
const SERVER_OWNED: Record<string, { fields?: string[]; labels?: string[] }> = {
  Namespace: { fields: ['spec'], labels: ['kubernetes.io/metadata.name'] },
};

/** Keys whose value is a label selector: there `{}` selects everything and must be kept. */
const SELECTOR_KEYS = new Set(['podSelector', 'namespaceSelector', 'selector']);

/** Per kind, where quantities live (a path pattern; '*' is any key or index). */
const QUANTITY_PATHS: Record<string, string[][]> = {
  ResourceQuota: [['spec', 'hard', '*']],
  LimitRange: ['max', 'min', 'default', 'defaultRequest', 'maxLimitRequestRatio'].map((field) => [
    'spec',
    'limits',
    '*',
    field,
    '*',
  ]),
};

function isQuantityPath(kind: string, path: string[]): boolean {
  return (QUANTITY_PATHS[kind] ?? []).some(
    (pattern) =>
      pattern.length === path.length &&
      pattern.every((part, i) => part === '*' || part === path[i]),
  );
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}

function normalize(kind: string, value: unknown, path: string[]): unknown {
  if (Array.isArray(value)) {
    // Items stay, even `{}`: `ingress: [{}]` allows everything.
    return value.map((item, index) => normalize(kind, item, [...path, String(index)]));
  }
  if (value !== null && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      const normalized = normalize(kind, child, [...path, key]);
      if (normalized === undefined || normalized === null) continue;
      if (isEmpty(normalized) && !(SELECTOR_KEYS.has(key) && !Array.isArray(normalized))) continue;
      result[key] = normalized;
    }
    return result;
  }
  if (typeof value === 'string' && isQuantityPath(kind, path)) {
    const exact = exactQuantityValue(value);
    // Tagged, so a quantity can never equal a plain string that looks like its fraction.
    return exact === undefined ? value : { quantity: exact };
  }
  return value;
}

/** The part of an object the operator owns, normalised for comparison. */
export function ownedFields(object: KubeObject): Record<string, unknown> {
  return normalize(object.kind, ownedProjection(object), []) as Record<string, unknown>;
}

/** What the operator owns of an object, before normalisation. */
function ownedProjection(object: KubeObject): Record<string, unknown> {
  const serverOwned = SERVER_OWNED[object.kind] ?? {};
  const labels = { ...object.metadata.labels };
  for (const label of serverOwned.labels ?? []) delete labels[label];
  const body = Object.fromEntries(
    Object.entries(object).filter(
      ([key]) => !SERVER_FIELDS.has(key) && !(serverOwned.fields ?? []).includes(key),
    ),
  );
  return {
    metadata: {
      labels,
      annotations: object.metadata.annotations,
      ownerReferences: object.metadata.ownerReferences,
      finalizers: object.metadata.finalizers,
    },
    ...body,
  };
}

/** Whether `live` says exactly what `desired` says, in everything the operator owns. */
export function ownedFieldsEqual(desired: KubeObject, live: KubeObject): boolean {
  return isDeepStrictEqual(ownedFields(desired), ownedFields(live));
}

/** Whether the owned value at `path` (e.g. ['roleRef'], ['spec', 'scopes']) differs. */
export function ownedFieldDiffers(desired: KubeObject, live: KubeObject, path: string[]): boolean {
  const at = (object: KubeObject) =>
    path.reduce<unknown>(
      (value, key) =>
        value !== null && typeof value === 'object'
          ? (value as Record<string, unknown>)[key]
          : undefined,
      ownedFields(object),
    );
  return !isDeepStrictEqual(at(desired), at(live));
}

/**
 * The normalised value (see normalize) as JSON with sorted keys, written in
 * one pass without building the normalised copy: every cached object's
 * digest is computed when it is listed, and every desired object's at each
 * reconcile, so at ten thousand tenants this is a good part of a restart.
 * Undefined for what normalize drops. `path` is tracked only for kinds that
 * have quantities.
 */
function normalJson(kind: string, value: unknown, path: string[] | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      path?.push(String(i));
      const item = normalJson(kind, value[i], path);
      path?.pop();
      if (i > 0) out += ',';
      // Items stay, as in normalize: a null item is written as null.
      out += item ?? JSON.stringify(value[i]);
    }
    return `${out}]`;
  }
  if (typeof value === 'object') {
    let out = '{';
    for (const key of Object.keys(value).sort()) {
      path?.push(key);
      const child = normalJson(kind, (value as Record<string, unknown>)[key], path);
      path?.pop();
      if (child === undefined || child === '[]' || (child === '{}' && !SELECTOR_KEYS.has(key)))
        continue;
      out += `${out.length > 1 ? ',' : ''}${JSON.stringify(key)}:${child}`;
    }
    return `${out}}`;
  }
  if (typeof value === 'string' && path && isQuantityPath(kind, path)) {
    const exact = exactQuantityValue(value);
    return exact === undefined ? JSON.stringify(value) : `{"quantity":${JSON.stringify(exact)}}`;
  }
  return JSON.stringify(value);
}

/** A digest of the owned fields: equal digests, equal owned fields. */
export function ownedFieldsDigest(object: KubeObject): string {
  const path = QUANTITY_PATHS[object.kind] ? [] : undefined;
  // The first 128 bits of SHA-256, base64url: 22 characters, kept per
  // cached object (compact-object.ts), 40 bytes of heap against 64 for all
  // 256 bits. Equal owned fields is all it tells; a tenant owner who wanted
  // drift to pass unseen would need a second preimage, 2^128 work.
  return hash(
    'sha256',
    normalJson(object.kind, ownedProjection(object), path) ?? '',
    'buffer',
  ).toString('base64url', 0, 16);
}

/**
 * The body of a PUT that makes `live` say exactly what `desired` says. A
 * replace, not a server-side apply: an apply, even forced, leaves alone the
 * fields that other field managers own (an `ingress` rule added with
 * `kubectl patch`, `matchLabels` put inside our `podSelector: {}`), and those
 * are exactly the fields that must go. The uid and resourceVersion make it
 * conditional: it replaces this very object as we saw it, or fails with a
 * conflict and is retried from fresh state.
 */
export function replacementFor(desired: KubeObject, live: KubeObject): KubeObject {
  const serverOwned = SERVER_OWNED[desired.kind] ?? {};
  const body = Object.fromEntries(
    Object.entries(desired).filter(([key]) => !SERVER_FIELDS.has(key)),
  );
  for (const field of serverOwned.fields ?? []) {
    if (live[field] === undefined) delete body[field];
    else body[field] = live[field];
  }
  const { name, namespace, labels, annotations, ownerReferences, finalizers } = desired.metadata;
  const { uid, resourceVersion } = live.metadata;
  return {
    apiVersion: desired.apiVersion,
    kind: desired.kind,
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      ...(uid === undefined ? {} : { uid }),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      ...(labels === undefined ? {} : { labels }),
      ...(annotations === undefined ? {} : { annotations }),
      ...(ownerReferences === undefined ? {} : { ownerReferences }),
      ...(finalizers === undefined ? {} : { finalizers }),
    },
    ...body,
  };
}
