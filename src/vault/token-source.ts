import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import type { VaultAuth, VaultClient, VaultTokenProvider } from './client.ts';
import type { VaultLogin } from './kubernetes-auth.ts';

// The operator's own Vault token, kept alive: log in (Kubernetes auth or
// AppRole), renew at 2/3 of the lease, log in again when a renewal fails or
// shows that the token nears its max TTL, retry with backoff while Vault is
// down. The token lives in a private field only; logs name the method, the
// TTL and the policies, never the token (nor its accessor, which Vault itself
// treats as sensitive enough to HMAC in audit logs).

/** How to obtain a token; `login` is sent through a client that carries no token. */
export interface VaultLoginMethod {
  /** For logs, e.g. { method: 'kubernetes', mount: 'kubernetes', role: 'tenant-operator' }. */
  readonly describe: Record<string, string>;
  login(unauthenticated: VaultClient): Promise<VaultLogin>;
}

/** The subset of pino's Logger used here, so src/vault needs no logging library. */
export interface TokenSourceLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface RenewingTokenSourceOptions {
  /** Any client of the right server; its token, if any, is never used. */
  client: VaultClient;
  method: VaultLoginMethod;
  log: TokenSourceLogger;
  /** First retry delay after a failed login; doubles up to maxBackoffMs. Default 1 s. */
  minBackoffMs?: number;
  /** Default 60 s. */
  maxBackoffMs?: number;
}

/** Renew when this much of the lease has passed. */
export const RENEW_AT_FRACTION = 2 / 3;

/** When to renew a lease of `leaseSeconds` (ms from now). */
export function renewDelayMs(leaseSeconds: number): number {
  return Math.max(0, Math.floor(leaseSeconds * 1000 * RENEW_AT_FRACTION));
}

/**
 * A token counts as expired this long before Vault's own deadline, so that
 * a request sent now does not arrive with a token that dies on the way.
 */
export function expiryMarginMs(leaseSeconds: number): number {
  return Math.min(5_000, (leaseSeconds * 1000) / 10);
}

/**
 * Vault grants the increment asked for unless the token's max TTL is closer:
 * then it grants the rest (with a warning). Less than asked means the next
 * renewal cannot help, so it is time to log in again.
 */
export function nearsMaxTtl(askedSeconds: number, grantedSeconds: number): boolean {
  return grantedSeconds < askedSeconds;
}

/** Exponential backoff with ±20 % jitter, so replicas do not retry in step. */
export function backoffMs(
  failures: number,
  minMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

interface HeldToken {
  readonly value: string;
  /** The TTL the login granted: what each renewal asks for. */
  readonly askedSeconds: number;
  readonly renewable: boolean;
  /** performance.now() deadline; Infinity for a token without TTL. */
  expiresAt: number;
  margin: number;
}

export class RenewingTokenSource implements VaultTokenProvider {
  private readonly client: VaultClient;
  private readonly method: VaultLoginMethod;
  private readonly log: TokenSourceLogger;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  #held: HeldToken | undefined;
  private loginInFlight: Promise<HeldToken> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** No on-demand login before this (performance.now()): callers get the last error instead. */
  private nextAttemptAt = 0;
  private lastError: OperatorError | undefined;
  private closed = false;
  /** Counters for tests and metrics: how often each thing happened. */
  readonly counts = { logins: 0, renewals: 0, loginFailures: 0, renewalFailures: 0 };

  constructor(options: RenewingTokenSourceOptions) {
    this.client = options.client.withoutToken();
    this.method = options.method;
    this.log = options.log;
    this.minBackoffMs = options.minBackoffMs ?? 1_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000;
  }

  /**
   * Starts the first login in the background; it retries with backoff until
   * it succeeds. Requests made meanwhile wait for a login of their own.
   */
  start(): void {
    this.schedule(0, () => this.loginInBackground('start'));
  }

  async token(): Promise<string> {
    if (this.closed) throw new OperatorError(ERROR_CODES.INTERNAL, 'Vault token source is closed');
    const held = this.#held;
    if (held && performance.now() < held.expiresAt - held.margin) return held.value;
    return (await this.loginOnDemand(held ? 'expired' : 'no token yet')).value;
  }

  async tokenAfterForbidden(rejected: string): Promise<string | undefined> {
    const held = this.#held;
    // Replaced meanwhile (a renewal cycle logged in again): the new one may work.
    if (held && held.value !== rejected && performance.now() < held.expiresAt - held.margin)
      return held.value;
    // Ask Vault whether the token itself is dead, so that a genuine "not
    // allowed" does not turn every refused request into a login.
    if (await this.isAlive(rejected)) return undefined;
    this.log.warn(
      this.fields(),
      'Vault refused the operator token (expired or revoked); logging in again',
    );
    if (this.#held?.value === rejected) this.#held = undefined;
    return (await this.loginOnDemand('token refused')).value;
  }

  /** Stops renewing; with `revoke`, also revokes the token (on shutdown). */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.#held;
    this.#held = undefined;
    if (options.revoke && held) {
      try {
        await this.client.withToken(held.value).write('auth/token/revoke-self');
        this.log.info(this.fields(), 'Vault token revoked');
      } catch (err: unknown) {
        this.log.warn(
          { ...this.fields(), err: toOperatorError(err).message },
          'could not revoke the Vault token; it expires by itself',
        );
      }
    }
  }

  private fields(): { vaultAuth: Record<string, string> } {
    return { vaultAuth: this.method.describe };
  }

  private schedule(delayMs: number, step: () => Promise<void>): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void step();
    }, delayMs);
    // Renewal alone must not keep the process alive.
    this.timer.unref();
  }

  private async isAlive(token: string): Promise<boolean> {
    try {
      await this.client.withToken(token).read('auth/token/lookup-self');
      return true;
    } catch (err: unknown) {
      return !(err instanceof OperatorError && err.httpStatus === 403);
    }
  }

  /** Logs in unless a login is running (then joins it) or backoff says not yet. */
  private loginOnDemand(reason: string): Promise<HeldToken> {
    if (!this.loginInFlight && this.lastError && performance.now() < this.nextAttemptAt) {
      const waitSeconds = Math.ceil((this.nextAttemptAt - performance.now()) / 1000);
      return Promise.reject(
        new OperatorError(
          this.lastError.code,
          `no Vault token: the last login failed (${this.lastError.message}); next attempt in ${waitSeconds} s`,
        ),
      );
    }
    return this.startLogin(reason);
  }

  /** Starts a login, or joins the one running; on success the renewal is scheduled. */
  private startLogin(reason: string): Promise<HeldToken> {
    if (this.closed)
      return Promise.reject(
        new OperatorError(ERROR_CODES.INTERNAL, 'Vault token source is closed'),
      );
    if (!this.loginInFlight) {
      const attempt = this.login(reason).finally(() => {
        this.loginInFlight = undefined;
      });
      this.loginInFlight = attempt;
      // A failure was logged and its retry scheduled in login().
      attempt.then(
        (held) => this.scheduleRenewal(held),
        () => undefined,
      );
    }
    return this.loginInFlight;
  }

  /** For timers: a login whose failure is already handled (logged, retry scheduled). */
  private async loginInBackground(reason: string): Promise<void> {
    await this.startLogin(reason).catch(() => undefined);
  }

  private async login(reason: string): Promise<HeldToken> {
    try {
      const login = await this.method.login(this.client);
      const held = heldFrom(login.clientToken, login.leaseDurationSeconds, login.renewable);
      this.#held = held;
      this.failures = 0;
      this.lastError = undefined;
      this.nextAttemptAt = 0;
      this.counts.logins++;
      this.log.info(
        {
          ...this.fields(),
          reason,
          ttlSeconds: login.leaseDurationSeconds,
          renewable: login.renewable,
          policies: login.policies,
        },
        'logged in to Vault',
      );
      return held;
    } catch (err: unknown) {
      const error = toOperatorError(err);
      this.failures++;
      this.counts.loginFailures++;
      this.lastError = error;
      const retryInMs = backoffMs(this.failures, this.minBackoffMs, this.maxBackoffMs);
      this.nextAttemptAt = performance.now() + retryInMs;
      this.log.warn(
        { ...this.fields(), reason, err: error.message, retryInMs },
        'Vault login failed; will retry',
      );
      this.schedule(retryInMs, () => this.loginInBackground('retry'));
      throw error;
    }
  }

  private scheduleRenewal(held: HeldToken): void {
    if (held.expiresAt === Infinity) return; // a token without TTL (dev root token) never expires
    const delay = renewDelayMs(held.askedSeconds);
    this.schedule(delay, () =>
      held.renewable ? this.renew(held) : this.loginInBackground('token not renewable'),
    );
  }

  private async renew(held: HeldToken): Promise<void> {
    if (this.#held !== held) return; // replaced since this was scheduled
    let granted: number;
    try {
      const response = await this.client
        .withToken(held.value)
        .write<never>('auth/token/renew-self', { increment: held.askedSeconds });
      const auth: VaultAuth | null | undefined = response?.auth;
      if (!auth)
        throw new OperatorError(ERROR_CODES.API_ERROR, 'Vault renew-self: no auth in the answer');
      granted = auth.lease_duration;
    } catch (err: unknown) {
      this.counts.renewalFailures++;
      this.log.warn(
        { ...this.fields(), err: toOperatorError(err).message },
        'Vault token renewal failed; logging in again',
      );
      return this.loginInBackground('renewal failed');
    }
    this.counts.renewals++;
    held.expiresAt = performance.now() + granted * 1000;
    held.margin = expiryMarginMs(granted);
    if (nearsMaxTtl(held.askedSeconds, granted)) {
      this.log.info(
        { ...this.fields(), ttlSeconds: granted, askedSeconds: held.askedSeconds },
        'Vault token renewed up to its max TTL; logging in again',
      );
      return this.loginInBackground('max TTL near');
    }
    this.log.info({ ...this.fields(), ttlSeconds: granted }, 'Vault token renewed');
    this.schedule(renewDelayMs(granted), () => this.renew(held));
  }
}

function heldFrom(token: string, leaseSeconds: number, renewable: boolean): HeldToken {
  const held = {
    askedSeconds: leaseSeconds,
    renewable,
    expiresAt: leaseSeconds > 0 ? performance.now() + leaseSeconds * 1000 : Infinity,
    margin: expiryMarginMs(leaseSeconds),
  };
  // Not enumerable: util.inspect, JSON.stringify and pino leave it out.
  Object.defineProperty(held, 'value', { value: token, enumerable: false });
  return held as HeldToken;
}
