import { ERROR_CODES, OperatorError, type ErrorCode } from '../errors.ts';
import { VaultReadCache } from './read-cache.ts';

// A small client for Vault's (and OpenBao's) HTTP API, on Node's global fetch.
// Nothing here knows about Kubernetes. Secrets never reach an error message or
// a log line: the token lives in a private field (invisible to JSON.stringify,
// pino and util.inspect), request bodies are never quoted, and of a failed
// response only Vault's own `errors` strings are kept.

/**
 * Where a client gets its token for each request, when the token changes over
 * time (a login that is renewed and redone). See token-source.ts.
 */
export interface VaultTokenProvider {
  /** The token to send now; waits for a login when there is no valid one. */
  token(): Promise<string>;
  /**
   * Called when Vault answered 403 to a request made with `rejected`: a fresh
   * token when `rejected` is expired or revoked (worth one retry), undefined
   * when the token is fine and the request is simply not allowed.
   */
  tokenAfterForbidden(rejected: string): Promise<string | undefined>;
}

export interface VaultClientOptions {
  /** e.g. http://127.0.0.1:8200 */
  address: string;
  /**
   * A static token (development, tests). Absent for a client that only logs in
   * (auth/<method>/login) or checks health, or that has a `tokenProvider`.
   */
  token?: string;
  /** The operator's own identity: a token that is renewed and re-obtained. Excludes `token`. */
  tokenProvider?: VaultTokenProvider;
  /**
   * Called before every request that may change something (any method but
   * GET and LIST); throwing refuses the request. Leader fencing hooks in here,
   * so that a replica that lost its lease writes nothing more.
   */
  beforeWrite?: () => void;
  /** Vault Enterprise / OpenBao namespace, sent as X-Vault-Namespace. */
  namespace?: string;
  /** Per request; default 10 s. */
  timeoutMs?: number;
}

/** The envelope of every Vault response. */
export interface VaultResponse<T = Record<string, unknown>> {
  data?: T;
  auth?: VaultAuth | null;
  warnings?: string[] | null;
  lease_duration?: number;
}

export interface VaultAuth {
  client_token: string;
  accessor: string;
  policies: string[] | null;
  token_policies?: string[] | null;
  lease_duration: number;
  renewable: boolean;
  metadata?: Record<string, string> | null;
}

export interface VaultRequestOptions {
  /** A 404 answers undefined instead of throwing (missing object, not missing route). */
  allowNotFound?: boolean;
  /** Send no token (login endpoints, health). */
  unauthenticated?: boolean;
  signal?: AbortSignal;
}

export type VaultMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST';

const DEFAULT_TIMEOUT_MS = 10_000;
/** Longest Vault error string kept, so a pathological answer cannot flood a status field. */
const MAX_ERROR_LENGTH = 300;
const SEGMENT = /^[A-Za-z0-9_.@=+-]+$/;

/**
 * Joins path segments into a Vault API path, refusing anything that could
 * change which endpoint is addressed ('', '.', '..', '/', '?', '#', '*', …).
 * Segments that contain '/' on purpose (a KV sub-path) are split first.
 */
export function vaultPath(...parts: string[]): string {
  const segments = parts.flatMap((part) => part.split('/'));
  for (const segment of segments) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `invalid Vault path segment ${JSON.stringify(segment.slice(0, 64))} in ${JSON.stringify(parts.join('/').slice(0, 200))}`,
      );
    }
  }
  return segments.join('/');
}

function codeForStatus(status: number, errors: string[]): ErrorCode {
  if (status === 400 && errors.some((e) => /check-and-set/i.test(e)))
    return ERROR_CODES.API_CONFLICT;
  switch (status) {
    case 400:
    case 405:
      return ERROR_CODES.API_INVALID;
    case 401:
    case 403:
      return ERROR_CODES.API_FORBIDDEN;
    case 404:
      // Vault answers a missing object with an empty `errors`; a 404 with text
      // is "no handler for route": a mount that does not exist, misconfiguration.
      return errors.length > 0 ? ERROR_CODES.API_INVALID : ERROR_CODES.API_NOT_FOUND;
    case 409:
    case 412:
      return ERROR_CODES.API_CONFLICT;
    case 429:
      return ERROR_CODES.API_THROTTLED;
    default:
      return ERROR_CODES.API_ERROR;
  }
}

/** Vault's `errors` strings from a response body, and nothing else of it. */
function vaultErrors(text: string): string[] {
  try {
    const parsed = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is string => typeof e === 'string')
      .map((e) => e.replace(/\s+/g, ' ').trim())
      .filter((e) => e.length > 0)
      .map((e) => (e.length > MAX_ERROR_LENGTH ? `${e.slice(0, MAX_ERROR_LENGTH)}…` : e));
  } catch {
    return [];
  }
}

export class VaultClient {
  readonly address: string;
  readonly namespace: string | undefined;
  readonly timeoutMs: number;
  /**
   * Answers the wrappers may reuse (read-cache.ts), this client's own: a
   * client with another token (withToken) starts with none.
   */
  readonly readCache = new VaultReadCache();
  readonly #token: string | undefined;
  readonly #tokenProvider: VaultTokenProvider | undefined;
  readonly #beforeWrite: (() => void) | undefined;

  constructor(options: VaultClientOptions) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch {
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'Vault address is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'Vault address must be http(s)');
    if (options.token === '')
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'Vault token is empty');
    if (options.token !== undefined && options.tokenProvider !== undefined)
      throw new OperatorError(
        ERROR_CODES.INTERNAL,
        'a Vault client takes a static token or a token provider, not both',
      );
    this.address = url.origin + url.pathname.replace(/\/+$/, '');
    this.namespace = options.namespace;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#token = options.token;
    this.#tokenProvider = options.tokenProvider;
    this.#beforeWrite = options.beforeWrite;
  }

  /** From VAULT_ADDR, VAULT_TOKEN and (optional) VAULT_NAMESPACE. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): VaultClient {
    const address = env.VAULT_ADDR;
    const token = env.VAULT_TOKEN;
    if (!address || !token)
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'VAULT_ADDR and VAULT_TOKEN must be set');
    return new VaultClient({
      address,
      token,
      ...(env.VAULT_NAMESPACE ? { namespace: env.VAULT_NAMESPACE } : {}),
    });
  }

  /**
   * The same server and namespace, another static token (e.g. one from a
   * login). The write hook stays: whatever acts for this process is fenced alike.
   */
  withToken(token: string): VaultClient {
    return new VaultClient({
      address: this.address,
      token,
      timeoutMs: this.timeoutMs,
      ...(this.namespace === undefined ? {} : { namespace: this.namespace }),
      ...(this.#beforeWrite === undefined ? {} : { beforeWrite: this.#beforeWrite }),
    });
  }

  /** The same server and namespace, without any token: for logins and health. */
  withoutToken(): VaultClient {
    return new VaultClient({
      address: this.address,
      timeoutMs: this.timeoutMs,
      ...(this.namespace === undefined ? {} : { namespace: this.namespace }),
    });
  }

  private async currentToken(): Promise<string | undefined> {
    return this.#tokenProvider ? this.#tokenProvider.token() : this.#token;
  }

  private headers(token: string | undefined, hasBody: boolean): Record<string, string> {
    return {
      accept: 'application/json',
      ...(token !== undefined ? { 'x-vault-token': token } : {}),
      ...(this.namespace ? { 'x-vault-namespace': this.namespace } : {}),
      ...(hasBody ? { 'content-type': 'application/json' } : {}),
    };
  }

  /**
   * One API call. `path` is relative to /v1/ and should come from vaultPath().
   * Answers the parsed body (undefined for 204), or undefined for a 404 of a
   * missing object when `allowNotFound`. A 404 for an unknown route (a mount
   * that does not exist) always throws: that is misconfiguration, not absence.
   * With a token provider, a 403 to an expired or revoked token is retried
   * once with a fresh token; any other 403 throws at once.
   */
  async request<T = VaultResponse>(
    method: VaultMethod,
    path: string,
    body?: unknown,
    options: VaultRequestOptions = {},
  ): Promise<T | undefined> {
    if (method !== 'GET' && method !== 'LIST') this.#beforeWrite?.();
    const token = options.unauthenticated === true ? undefined : await this.currentToken();
    try {
      return await this.send<T>(method, path, body, options, token);
    } catch (err: unknown) {
      const provider = this.#tokenProvider;
      if (
        provider === undefined ||
        token === undefined ||
        !(err instanceof OperatorError && err.httpStatus === 403)
      )
        throw err;
      const fresh = await provider.tokenAfterForbidden(token);
      if (fresh === undefined || fresh === token) throw err;
      return this.send<T>(method, path, body, options, fresh);
    }
  }

  private async send<T>(
    method: VaultMethod,
    path: string,
    body: unknown,
    options: VaultRequestOptions,
    token: string | undefined,
  ): Promise<T | undefined> {
    // LIST is sent as GET ?list=true: some proxies refuse unknown methods.
    const httpMethod = method === 'LIST' ? 'GET' : method;
    const url = `${this.address}/v1/${path.replace(/^\/+/, '')}${method === 'LIST' ? '?list=true' : ''}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const what = `Vault ${method} ${path}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: httpMethod,
        headers: this.headers(token, body !== undefined),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
        redirect: 'manual',
      });
      text = await response.text();
    } catch (err: unknown) {
      const timedOut = timeout.aborted;
      const reason = timedOut
        ? `timed out after ${this.timeoutMs} ms`
        : err instanceof Error
          ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}`
          : String(err);
      throw new OperatorError(ERROR_CODES.NETWORK, `${what}: ${reason}`, {
        cause: err,
        origin: 'vault',
      });
    }
    if (response.status >= 200 && response.status < 300) {
      if (!text) return undefined;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new OperatorError(ERROR_CODES.API_ERROR, `${what}: answer is not JSON`, {
          httpStatus: response.status,
          origin: 'vault',
        });
      }
    }
    const errors = vaultErrors(text);
    if (response.status === 404 && errors.length === 0 && options.allowNotFound) return undefined;
    const detail = errors.length > 0 ? errors.join('; ') : response.statusText || 'no error text';
    throw new OperatorError(
      codeForStatus(response.status, errors),
      `${what}: HTTP ${response.status}: ${detail}`,
      { httpStatus: response.status, origin: 'vault' },
    );
  }

  /** GET; a missing object answers undefined. */
  async read<T = Record<string, unknown>>(path: string): Promise<VaultResponse<T> | undefined> {
    return this.request<VaultResponse<T>>('GET', path, undefined, { allowNotFound: true });
  }

  /** POST (Vault's create-or-update); answers the body, if any. */
  async write<T = Record<string, unknown>>(
    path: string,
    body: unknown = {},
  ): Promise<VaultResponse<T> | undefined> {
    return this.request<VaultResponse<T>>('POST', path, body);
  }

  /** DELETE; a missing object counts as deleted. */
  async delete(path: string): Promise<void> {
    await this.request('DELETE', path, undefined, { allowNotFound: true });
  }

  /** LIST; answers the keys, [] when there are none. */
  async list(path: string): Promise<string[]> {
    const response = await this.request<VaultResponse<{ keys?: string[] }>>(
      'LIST',
      path,
      undefined,
      { allowNotFound: true },
    );
    return response?.data?.keys ?? [];
  }

  /** Whether the server is initialized and unsealed (sys/health, no token needed). */
  async health(): Promise<{ initialized: boolean; sealed: boolean; version: string }> {
    // sys/health answers 429/472/473/501/503 for standby, DR, perf standby,
    // uninitialized, sealed; ask for 200 in every case and read the fields.
    const body = await this.request<{ initialized: boolean; sealed: boolean; version: string }>(
      'GET',
      'sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200',
      undefined,
      { unauthenticated: true },
    );
    if (!body)
      throw new OperatorError(ERROR_CODES.API_ERROR, 'Vault sys/health: empty answer', {
        origin: 'vault',
      });
    return { initialized: body.initialized, sealed: body.sealed, version: body.version };
  }

  /** Never the token. */
  toJSON(): Record<string, unknown> {
    return { address: this.address, namespace: this.namespace };
  }
}
