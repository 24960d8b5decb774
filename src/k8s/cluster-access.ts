import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// Where the API server is and how to prove who we are: the server's address,
// TLS material, and an Authorization header asked for before every request
// (tokens rotate).
//
// Why not @kubernetes/client-node's KubeConfig for all of it: importing it
// loads the library's every generated API model, about 85 MiB of resident
// memory in the operator for a few hundred lines of config reading. The
// cases an operator meets are read here: in a pod, the ServiceAccount's
// files; a kubeconfig whose user has client certificates or a token. Users
// that run a plugin (exec, auth-provider: cloud logins, OIDC) and merged
// KUBECONFIG lists go to the library, imported only then.

export interface ClusterAccess {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** false only when the kubeconfig says insecure-skip-tls-verify. */
  rejectUnauthorized: boolean;
  /**
   * The credential headers (Authorization; impersonation when the library
   * reads the kubeconfig), asked before every request: tokens rotate.
   */
  headers: () => Promise<Record<string, string>>;
  /** Where this came from, for the log. */
  source: string;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long a token read from a file is used before the file is read again (the kubelet rotates it). */
const TOKEN_FILE_REFRESH_MS = 60_000;

function configError(message: string): OperatorError {
  return new OperatorError(ERROR_CODES.INVALID_SPEC, message);
}

/** A bearer token read from a file, read again once a minute (`refreshMs`) if the file changed. */
export function tokenFromFile(
  path: string,
  refreshMs = TOKEN_FILE_REFRESH_MS,
): () => Promise<string> {
  let token = '';
  let readAt = 0;
  let modifiedAt = 0;
  return () => {
    const now = Date.now();
    if (now - readAt >= refreshMs || token === '') {
      const modified = statSync(path).mtimeMs;
      if (modified !== modifiedAt || token === '') {
        token = readFileSync(path, 'utf8').trim();
        modifiedAt = modified;
      }
      readAt = now;
    }
    return Promise.resolve(`Bearer ${token}`);
  };
}

/** In a pod: the API server's service address and the mounted ServiceAccount token and CA. */
export function inClusterAccess(
  env: NodeJS.ProcessEnv = process.env,
  dir = IN_CLUSTER_DIR,
): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw configError(
      'not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset',
    );
  const token = tokenFromFile(join(dir, 'token'));
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    rejectUnauthorized: true,
    headers: async () => ({ authorization: await token() }),
    source: 'in-cluster ServiceAccount',
  };
}

interface Named<T> {
  name?: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

interface KubeconfigCluster {
  server?: unknown;
  'certificate-authority'?: unknown;
  'certificate-authority-data'?: unknown;
  'insecure-skip-tls-verify'?: unknown;
  'proxy-url'?: unknown;
  'tls-server-name'?: unknown;
}

interface KubeconfigUser {
  'client-certificate'?: unknown;
  'client-certificate-data'?: unknown;
  'client-key'?: unknown;
  'client-key-data'?: unknown;
  token?: unknown;
  tokenFile?: unknown;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: unknown;
  password?: unknown;
  as?: unknown;
  impersonate?: unknown;
}

interface Kubeconfig {
  'current-context'?: unknown;
  contexts?: Named<{ cluster?: unknown; user?: unknown }>[];
  clusters?: Named<KubeconfigCluster>[];
  users?: Named<KubeconfigUser>[];
}

/** Fields this reader does not handle: such a kubeconfig goes to the library. */
const USER_FIELDS_FOR_THE_LIBRARY = [
  'exec',
  'auth-provider',
  'username',
  'password',
  'as',
  'impersonate',
] as const;
const CLUSTER_FIELDS_FOR_THE_LIBRARY = ['proxy-url', 'tls-server-name'] as const;

function named<T>(
  list: Named<T>[] | undefined,
  name: unknown,
  field: 'cluster' | 'user' | 'context',
  file: string,
): T {
  const entry = list?.find((e) => e.name === name)?.[field];
  if (!entry) throw configError(`${file}: no ${field} named ${String(name)}`);
  return entry;
}

/** A file's text or a base64 field's, whichever the kubeconfig gives; paths are relative to the file. */
function material(base: string, path: unknown, data: unknown): string | undefined {
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64').toString('utf8');
  if (typeof path === 'string' && path !== '')
    return readFileSync(isAbsolute(path) ? path : join(base, path), 'utf8');
  return undefined;
}

/**
 * A kubeconfig file's current context, or undefined when it needs what only
 * the library does (a plugin, basic auth, impersonation, a proxy).
 */
export function kubeconfigFileAccess(file: string): ClusterAccess | undefined {
  const config = parse(readFileSync(file, 'utf8')) as Kubeconfig | null;
  if (!config) throw configError(`${file}: empty kubeconfig`);
  const contextName = config['current-context'];
  if (typeof contextName !== 'string' || contextName === '')
    throw configError(`${file}: no current-context`);
  const context = named(config.contexts, contextName, 'context', file);
  const cluster = named(config.clusters, context.cluster, 'cluster', file);
  const user = context.user === undefined ? {} : named(config.users, context.user, 'user', file);
  if (USER_FIELDS_FOR_THE_LIBRARY.some((f) => user[f] !== undefined)) return undefined;
  if (CLUSTER_FIELDS_FOR_THE_LIBRARY.some((f) => cluster[f] !== undefined)) return undefined;
  if (typeof cluster.server !== 'string' || cluster.server === '')
    throw configError(`${file}: cluster ${String(context.cluster)} has no server`);

  const base = dirname(file);
  const ca = material(
    base,
    cluster['certificate-authority'],
    cluster['certificate-authority-data'],
  );
  const cert = material(base, user['client-certificate'], user['client-certificate-data']);
  const key = material(base, user['client-key'], user['client-key-data']);
  const token = typeof user.token === 'string' && user.token !== '' ? user.token : undefined;
  const tokenFile =
    typeof user.tokenFile === 'string' && user.tokenFile !== ''
      ? tokenFromFile(isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile))
      : undefined;
  return {
    server: cluster.server.replace(/\/$/, ''),
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    headers: async () =>
      token
        ? { authorization: `Bearer ${token}` }
        : tokenFile
          ? { authorization: await tokenFile() }
          : {},
    source: `kubeconfig ${file}, context ${contextName}`,
  };
}

/** The library's KubeConfig, seen as ClusterAccess (headers asked per request: plugins refresh tokens). */
export async function accessFromKubeConfig(
  kubeConfig: KubeConfig,
  source: string,
): Promise<ClusterAccess> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw configError(`${source}: no current cluster`);
  const tls: { ca?: unknown; cert?: unknown; key?: unknown; rejectUnauthorized?: boolean } = {};
  await kubeConfig.applyToHTTPSOptions(tls);
  // The library gives file contents as Buffers and -data fields as strings.
  const text = (value: unknown): string | undefined =>
    Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : undefined;
  const ca = text(tls.ca);
  const cert = text(tls.cert);
  const key = text(tls.key);
  return {
    server: cluster.server.replace(/\/$/, ''),
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    rejectUnauthorized: !(tls.rejectUnauthorized === false || cluster.skipTLSVerify),
    headers: async () => {
      const options: { headers?: Record<string, string> } = {};
      await kubeConfig.applyToHTTPSOptions(options);
      // Lower-case names, as fetch sends them and as the client merges its own.
      return Object.fromEntries(
        Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
      );
    },
    source,
  };
}

/** The library reads these files, merged as kubectl merges a KUBECONFIG list. */
async function libraryAccess(files: string[]): Promise<ClusterAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  const [first, ...rest] = files;
  if (first === undefined) throw configError('no kubeconfig file');
  kubeConfig.loadFromFile(first);
  for (const file of rest) {
    const next = new KubeConfig();
    next.loadFromFile(file);
    // The first file's current-context wins, as in kubectl.
    kubeConfig.mergeConfig(next, true);
  }
  return accessFromKubeConfig(
    kubeConfig,
    `kubeconfig ${files.join(':')} (@kubernetes/client-node)`,
  );
}

/**
 * As kubectl finds a cluster: KUBECONFIG, else ~/.kube/config, else the
 * pod's ServiceAccount.
 */
export async function loadClusterAccess(
  env: NodeJS.ProcessEnv = process.env,
): Promise<ClusterAccess> {
  const listed = env.KUBECONFIG?.split(':').filter(Boolean) ?? [];
  if (listed.length > 1) return libraryAccess(listed);
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  const file = listed[0] ?? (existsSync(home) ? home : undefined);
  if (file === undefined) return inClusterAccess(env);
  return kubeconfigFileAccess(file) ?? libraryAccess([file]);
}
