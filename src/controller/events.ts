import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { EVENTS_NAMESPACE } from '../api/constants.ts';
import { toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

// Kubernetes Events about a Tenant, one per lifecycle step, so that
// `kubectl describe tenant` tells its story. An Event that cannot be written
// is logged and dropped: it must never fail a reconcile.

export type EventType = 'Normal' | 'Warning';

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly instance: string;

  constructor(client: KubeClient, log: Logger, instance: string) {
    this.client = client;
    this.log = log;
    this.instance = instance;
  }

  async record(
    subject: KubeObject,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const now = new Date().toISOString();
    const name = `${subject.metadata.name}.${Date.now().toString(16)}${randomBytes(3).toString('hex')}`;
    const event: KubeObject = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: subject.metadata.namespace ?? EVENTS_NAMESPACE },
      involvedObject: {
        apiVersion: subject.apiVersion,
        kind: subject.kind,
        name: subject.metadata.name,
        ...(subject.metadata.uid ? { uid: subject.metadata.uid } : {}),
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: 'tenant-operator' },
      reportingComponent: 'tenancy.io/tenant-operator',
      reportingInstance: this.instance,
    };
    try {
      await this.client.create(collectionPath(RESOURCES.Event, event.metadata.namespace), event);
    } catch (err: unknown) {
      this.log.warn({ reason, err: toOperatorError(err).message }, 'could not record event');
    }
    this.log.info({ tenant: subject.metadata.name, eventType: type, reason }, message);
  }
}
