import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { KubeConfig } from '@kubernetes/client-node';
import PQueue from 'p-queue';
import { Agent, fetch } from 'undici';
import { FIELD_MANAGER } from '../api/constants.ts';
import { ERROR_CODES, OperatorError, type ErrorCode } from '../errors.ts';
import { accessFromKubeConfig, type ClusterAccess } from './cluster-access.ts';
import type { KubeObject, WatchEvent } from './types.ts';
import { objectPath, resourceFor, resourceOfPath } from './resources.ts';

// A thin client for the Kubernetes REST API. Where the server is and the
// credentials come from ClusterAccess (see cluster-access.ts); the requests
// go through one keep-alive connection pool, because @kubernetes/client-node
// opens a new TLS connection for every call and the operator makes many
// small ones.

export interface RequestObserver {
  (method: string, path: string, status: number): void;
}

/**
 * Asked right before every write is sent: throws to refuse it. The operator
 * sets one that allows writes only while it holds the leader-election lease.
 */
export type WriteGuard = (method: string, path: string) => void;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Cut the request off after this long (default 30 s). */
  timeoutMs?: number;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * How hard the operator may press the API server: at most `qps` requests a
 * second and `concurrency` at once (watches count once, when opened). The
 * API server's own fairness (APF) queues or refuses with 429 what is beyond
 * its share; bounding it here keeps a burst of new tenants from filling
 * those queues, where the operator's own reads would wait behind it.
 */
export interface RateLimit {
  qps: number;
  concurrency: number;
}

/** A 429 (the API server's fairness or max-inflight limit) is retried this many times. */
const MAX_THROTTLED_RETRIES = 6;
const THROTTLE_BASE_MS = 250;
/** Retry-After is followed, up to this. */
const MAX_RETRY_AFTER_MS = 10_000;

/** The wait before retry `attempt` (1-based) of a 429: the server's Retry-After, else exponential with jitter. */
export function throttledRetryDelay(attempt: number, retryAfter: string | null): number {
  const seconds = Number(retryAfter);
  if (retryAfter !== null && Number.isFinite(seconds) && seconds >= 0)
    return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const base = THROTTLE_BASE_MS * 2 ** (attempt - 1);
  return Math.min(base + Math.random() * base, MAX_RETRY_AFTER_MS);
}

export class KubeClient {
  readonly server: string;
  /** API requests that change something, by resource, since start. */
  private readonly writeCounts = new Map<string, number>();
  private readonly credentialHeaders: ClusterAccess['headers'];
  private readonly agent: Agent;
  private readonly observers: RequestObserver[] = [];
  private writeGuard: WriteGuard | undefined;
  private writesInFlight = 0;
  private settledWaiters: (() => void)[] = [];
  private readonly limiter: PQueue | undefined;

  private constructor(access: ClusterAccess, agent: Agent, rateLimit?: RateLimit) {
    this.credentialHeaders = access.headers;
    this.server = access.server;
    this.agent = agent;
    this.limiter = rateLimit
      ? new PQueue({
          concurrency: rateLimit.concurrency,
          // A tenth of a second at a time: no burst of a whole second's worth.
          interval: 100,
          intervalCap: Math.max(1, Math.round(rateLimit.qps / 10)),
        })
      : undefined;
  }

  /**
   * From ClusterAccess, or from a KubeConfig that tests and scripts loaded
   * themselves. Without a rate limit, requests go out as they come.
   */
  static async create(
    from: ClusterAccess | KubeConfig,
    options: { rateLimit?: RateLimit } = {},
  ): Promise<KubeClient> {
    const access =
      'getCurrentCluster' in from ? await accessFromKubeConfig(from, 'KubeConfig') : from;
    const agent = new Agent({
      connections: 32,
      keepAliveTimeout: 30_000,
      connect: {
        ...(access.ca ? { ca: access.ca } : {}),
        ...(access.cert ? { cert: access.cert } : {}),
        ...(access.key ? { key: access.key } : {}),
        ...(access.rejectUnauthorized ? {} : { rejectUnauthorized: false }),
      },
    });
    return new KubeClient(access, agent, options.rateLimit);
  }

  /** Writes so far, leaving out the named resources (e.g. the leader Lease's renewals). */
  writesExcept(...resources: string[]): number {
    let total = 0;
    for (const [resource, count] of this.writeCounts)
      if (!resources.includes(resource)) total += count;
    return total;
  }

  onRequest(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  /** Every write (anything but GET) must pass `guard` first; see WriteGuard. */
  setWriteGuard(guard: WriteGuard): void {
    this.writeGuard = guard;
  }

  /** Resolves once no write is in flight: a replica stepping down waits for its last ones. */
  writesSettled(): Promise<void> {
    if (this.writesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** Headers are made per call: bearer tokens (service account, exec plugins) rotate. */
  private async headers(contentType?: string): Promise<Record<string, string>> {
    return {
      accept: 'application/json',
      'user-agent': 'tenant-operator',
      ...(await this.credentialHeaders()),
      ...(contentType ? { 'content-type': contentType } : {}),
    };
  }

  private url(path: string, query?: RequestOptions['query']): string {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  /** Requests waiting for the rate limit, and running under it. */
  get queued(): { waiting: number; running: number } {
    return { waiting: this.limiter?.size ?? 0, running: this.limiter?.pending ?? 0 };
  }

  /** Runs `send` within the rate limit (if any). */
  private limited<T>(send: () => Promise<T>): Promise<T> {
    return this.limiter ? this.limiter.add(send) : send();
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const answer = await this.limited(() => this.send<T>(method, path, options));
      if (answer.throttled === undefined) return answer.value as T;
      if (attempt > MAX_THROTTLED_RETRIES) throw answer.throttled.error;
      await sleep(throttledRetryDelay(attempt, answer.throttled.retryAfter), undefined, {
        ...(options.signal ? { signal: options.signal } : {}),
      });
    }
  }

  /** One request; a 429 is answered, not thrown, so that request() can wait and retry it. */
  private async send<T>(
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<{ value?: T; throttled?: { error: OperatorError; retryAfter: string | null } }> {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = await this.headers(
      body === undefined ? undefined : (options.contentType ?? 'application/json'),
    );
    const isWrite = WRITE_METHODS.has(method);
    // Asked after the last await before fetch(), so the answer is about this very
    // moment and not about one before a pause of the process.
    if (isWrite) this.writeGuard?.(method, path);
    const timeout = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    if (isWrite) this.writesInFlight++;
    try {
      let response;
      try {
        response = await fetch(this.url(path, options.query), {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          dispatcher: this.agent,
          signal,
        });
      } catch (err: unknown) {
        throw new OperatorError(
          ERROR_CODES.NETWORK,
          `${method} ${path}: ${(err as Error).message}`,
          { cause: err, origin: 'kubernetes' },
        );
      }
      for (const observe of this.observers) observe(method, path, response.status);
      const text = await response.text();
      // Refused before it was processed: nothing was written, and it may be sent again.
      if (response.status === 429) {
        return {
          throttled: {
            error: apiError(method, path, response.status, text),
            retryAfter: response.headers.get('retry-after'),
          },
        };
      }
      if (isWrite) {
        const resource = resourceOfPath(path);
        this.writeCounts.set(resource, (this.writeCounts.get(resource) ?? 0) + 1);
      }
      if (response.status >= 200 && response.status < 300) {
        return { value: (text ? JSON.parse(text) : undefined) as T };
      }
      throw apiError(method, path, response.status, text);
    } finally {
      if (isWrite && --this.writesInFlight === 0) {
        for (const resolve of this.settledWaiters.splice(0)) resolve();
      }
    }
  }

  /** GET that answers undefined for a missing object. */
  async get<T extends KubeObject>(
    path: string,
    options: Pick<RequestOptions, 'signal' | 'timeoutMs'> = {},
  ): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path, options);
    } catch (err: unknown) {
      if (err instanceof OperatorError && err.code === ERROR_CODES.API_NOT_FOUND) return undefined;
      throw err;
    }
  }

  /** Server-side apply under our one field manager; force takes back fields others changed. */
  async apply<T extends KubeObject>(object: T, options: { dryRun?: boolean } = {}): Promise<T> {
    const type = resourceFor(object.apiVersion, object.kind);
    const path = objectPath(type, object.metadata.name, object.metadata.namespace);
    return this.request<T>('PATCH', path, {
      query: {
        fieldManager: FIELD_MANAGER,
        force: true,
        dryRun: options.dryRun ? 'All' : undefined,
      },
      body: object,
      contentType: 'application/apply-patch+yaml',
    });
  }

  async mergePatch<T>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, {
      query: { fieldManager: FIELD_MANAGER },
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  async jsonPatch<T>(path: string, operations: unknown[]): Promise<T> {
    return this.request<T>('PATCH', path, {
      query: { fieldManager: FIELD_MANAGER },
      body: operations,
      contentType: 'application/json-patch+json',
    });
  }

  async create<T extends KubeObject>(path: string, object: T): Promise<T> {
    return this.request<T>('POST', path, { query: { fieldManager: FIELD_MANAGER }, body: object });
  }

  /** Delete; a missing object counts as deleted. */
  async delete(
    path: string,
    propagationPolicy: 'Background' | 'Foreground' = 'Background',
  ): Promise<void> {
    try {
      await this.request('DELETE', path, { body: { propagationPolicy } });
    } catch (err: unknown) {
      if (err instanceof OperatorError && err.code === ERROR_CODES.API_NOT_FOUND) return;
      throw err;
    }
  }

  /**
   * Opens a watch: resolves once the server has accepted it (so the caller
   * knows the watch is really live), with the events until the server ends
   * the stream or the signal aborts. Errors (HTTP or network) are thrown to
   * the caller, which decides whether to relist or rewatch.
   */
  async watch<T extends KubeObject>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    signal: AbortSignal,
  ): Promise<AsyncGenerator<WatchEvent<T>>> {
    let response;
    try {
      // Opening counts against the rate limit; the open stream does not hold a slot.
      response = await this.limited(async () =>
        fetch(this.url(path, { ...query, watch: true }), {
          method: 'GET',
          headers: await this.headers(),
          dispatcher: this.agent,
          signal,
        }),
      );
    } catch (err: unknown) {
      throw new OperatorError(ERROR_CODES.NETWORK, `watch ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (response.status !== 200 || !response.body) {
      throw apiError('WATCH', path, response.status, await response.text());
    }
    return watchEvents<T>(response.body as WebReadableStream<Uint8Array>, path, signal);
  }
}

async function* watchEvents<T extends KubeObject>(
  body: WebReadableStream<Uint8Array>,
  path: string,
  signal: AbortSignal,
): AsyncGenerator<WatchEvent<T>> {
  const stream = Readable.fromWeb(body);
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue;
      yield JSON.parse(line) as WatchEvent<T>;
    }
  } catch (err: unknown) {
    if (signal.aborted) return;
    throw new OperatorError(ERROR_CODES.NETWORK, `watch ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    lines.close();
    stream.destroy();
  }
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 404:
      return ERROR_CODES.API_NOT_FOUND;
    case 409:
      return ERROR_CODES.API_CONFLICT;
    case 410:
      return ERROR_CODES.API_GONE;
    case 429:
      return ERROR_CODES.API_THROTTLED;
    case 401:
    case 403:
      return ERROR_CODES.API_FORBIDDEN;
    case 400:
    case 422:
      return ERROR_CODES.API_INVALID;
    default:
      return ERROR_CODES.API_ERROR;
  }
}

function apiError(method: string, path: string, status: number, body: string): OperatorError {
  let message = body.slice(0, 500);
  try {
    const parsed = JSON.parse(body) as { message?: string };
    if (parsed.message) message = parsed.message;
  } catch {
    // not a Status object; keep the raw text
  }
  return new OperatorError(codeForStatus(status), `${method} ${path}: ${status} ${message}`, {
    httpStatus: status,
    origin: 'kubernetes',
  });
}
