import type { Logger } from 'pino';
import { FIELD_MANAGER, LABEL_TENANT } from '../api/constants.ts';
import type { KubeClient } from '../k8s/client.ts';
import { digestOf, isCompact } from '../k8s/compact-object.ts';
import {
  ownedFieldDiffers,
  ownedFieldsDigest,
  ownedFieldsEqual,
  replacementFor,
} from '../k8s/owned-fields.ts';
import { collectionPath, objectPath, resourceFor } from '../k8s/resources.ts';
import type { ServerAnswers } from '../k8s/server-answers.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { Metrics } from '../metrics/registry.ts';

// Makes one object the operator owns say exactly what it should, writing
// only when it does not. The three writes, and why each:
//   - missing: a create (POST), which fails when the object exists after
//     all: a write decided on stale state (a leader paused past its lease,
//     a lagging cache) never lands over what someone wrote since;
//   - different: a replace (PUT) of everything we own, conditional on the
//     uid and resourceVersion we compared against. An apply would leave the
//     fields other managers set, which is what drift is made of;
//   - an immutable field changed (a RoleBinding's roleRef, a quota's scopes):
//     delete, then create.
// A conflict (someone wrote in between) fails the reconcile, which is retried
// from fresh state by the queue.

export interface ChildSyncDeps {
  client: KubeClient;
  metrics: Metrics;
  log: Logger;
  answers: ServerAnswers;
}

/** Fields the API server refuses to change in place: a difference there means delete and create. */
const IMMUTABLE_FIELDS: Record<string, string[][]> = {
  RoleBinding: [['roleRef']],
  ResourceQuota: [
    ['spec', 'scopes'],
    ['spec', 'scopeSelector'],
  ],
};

function pathOf(object: KubeObject): string {
  const type = resourceFor(object.apiVersion, object.kind);
  return objectPath(type, object.metadata.name, object.metadata.namespace);
}

/** Whether nothing needs writing: equal, or exactly what the server made of our last write. */
function inSync(deps: ChildSyncDeps, desired: KubeObject, live: KubeObject): boolean {
  if (
    isCompact(live)
      ? digestOf(live) === ownedFieldsDigest(desired)
      : ownedFieldsEqual(desired, live)
  )
    return true;
  return deps.answers.accepts(desired, live, () =>
    deps.log.warn(
      { kind: desired.kind, namespace: desired.metadata.namespace, name: desired.metadata.name },
      'the API server keeps this object in a form that differs from what we write (an unknown default?); accepting that form',
    ),
  );
}

/**
 * Brings `live` (undefined: the object does not exist) to `desired`.
 * Answers the object as the server now has it. `expected` says that a write
 * is part of provisioning, not a repair of drift (it is then not counted).
 */
export async function syncChild(
  deps: ChildSyncDeps,
  desired: KubeObject,
  live: KubeObject | undefined,
  expected: boolean,
): Promise<KubeObject> {
  if (live && inSync(deps, desired, live)) return live;
  if (live && isCompact(live)) {
    // The cache keeps only a digest: the repair starts from the whole object, as it is now.
    const whole = await deps.client.get<KubeObject>(pathOf(live));
    if (whole && inSync(deps, desired, whole)) return whole;
    live = whole;
  }
  let result: KubeObject;
  if (!live) {
    result = await createObject(deps, desired);
  } else if (
    (IMMUTABLE_FIELDS[desired.kind] ?? []).some((f) => ownedFieldDiffers(desired, live, f))
  ) {
    await deps.client.request('DELETE', pathOf(live), {
      body: {
        propagationPolicy: 'Background',
        preconditions: { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion },
      },
    });
    result = await createObject(deps, desired);
  } else {
    result = await deps.client.request<KubeObject>('PUT', pathOf(live), {
      query: { fieldManager: FIELD_MANAGER },
      body: replacementFor(desired, live),
    });
  }
  deps.answers.remember(desired, result);
  if (!expected) recordRepair(deps, desired, live !== undefined);
  return result;
}

/**
 * Creates an object that must not exist yet (POST, never apply: an apply
 * would quietly take over an object of the same name made by someone else).
 * A 409 AlreadyExists fails the reconcile; the retry then finds the object
 * and decides about it.
 */
export async function createChild(
  deps: ChildSyncDeps,
  desired: KubeObject,
  expected: boolean,
): Promise<KubeObject> {
  const result = await createObject(deps, desired);
  deps.answers.remember(desired, result);
  if (!expected) recordRepair(deps, desired, false);
  return result;
}

function createObject(deps: ChildSyncDeps, desired: KubeObject): Promise<KubeObject> {
  const type = resourceFor(desired.apiVersion, desired.kind);
  return deps.client.create(collectionPath(type, desired.metadata.namespace), desired);
}

function recordRepair(deps: ChildSyncDeps, desired: KubeObject, existed: boolean): void {
  deps.metrics.driftRepairs.inc({ kind: desired.kind });
  deps.log.info(
    {
      tenant: desired.metadata.labels?.[LABEL_TENANT],
      kind: desired.kind,
      name: desired.metadata.name,
      existed,
    },
    existed
      ? 'repaired drift: object put back as it should be'
      : 'repaired drift: object recreated',
  );
}
