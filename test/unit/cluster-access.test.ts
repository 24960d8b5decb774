import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import {
  inClusterAccess,
  kubeconfigFileAccess,
  loadClusterAccess,
  tokenFromFile,
} from '../../src/k8s/cluster-access.ts';

// The kubeconfig reader the operator uses instead of @kubernetes/client-node's
// (which costs ~85 MiB of RSS to import). Against the real API server it runs
// in every integration test: the operators they start read their kubeconfig
// with it. Here: each field it reads, and what it leaves to the library.

const dir = mkdtempSync(join(tmpdir(), 'cluster-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(
  name: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'main',
      contexts: [
        { name: 'other', context: { cluster: 'elsewhere', user: 'nobody' } },
        { name: 'main', context: { cluster: 'local', user: 'me' } },
      ],
      clusters: [
        { name: 'elsewhere', cluster: { server: 'https://elsewhere:6443' } },
        { name: 'local', cluster: { server: 'https://127.0.0.1:6443/', ...cluster } },
      ],
      users: [
        { name: 'nobody', user: { token: 'not-this-one' } },
        { name: 'me', user },
      ],
    }),
  );
  return file;
}

writeFileSync(join(dir, 'ca.crt'), 'CA FROM FILE');
mkdirSync(join(dir, 'certs'));
writeFileSync(join(dir, 'certs', 'me.crt'), 'CERT FROM FILE');
writeFileSync(join(dir, 'certs', 'me.key'), 'KEY FROM FILE');

test("the current context's cluster and user: files relative to the kubeconfig, a trailing slash dropped", async () => {
  const access = kubeconfigFileAccess(
    kubeconfig(
      'files.yaml',
      { 'client-certificate': 'certs/me.crt', 'client-key': join(dir, 'certs', 'me.key') },
      { 'certificate-authority': 'ca.crt' },
    ),
  );
  assert.ok(access);
  assert.equal(access.server, 'https://127.0.0.1:6443');
  assert.equal(access.ca, 'CA FROM FILE');
  assert.equal(access.cert, 'CERT FROM FILE');
  assert.equal(access.key, 'KEY FROM FILE');
  assert.equal(access.rejectUnauthorized, true);
  assert.deepEqual(await access.headers(), {});
});

test('-data fields are base64; a token becomes a bearer header; insecure-skip-tls-verify is kept', async () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const access = kubeconfigFileAccess(
    kubeconfig(
      'data.yaml',
      { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY'), token: 's3cr3t' },
      { 'certificate-authority-data': b64('CA'), 'insecure-skip-tls-verify': true },
    ),
  );
  assert.ok(access);
  assert.deepEqual([access.ca, access.cert, access.key], ['CA', 'CERT', 'KEY']);
  assert.equal(access.rejectUnauthorized, false);
  assert.equal((await access.headers())?.authorization, 'Bearer s3cr3t');
});

test('a token file is read again when it changes (the kubelet rotates it)', async () => {
  const path = join(dir, 'token');
  writeFileSync(path, 'first\n');
  const token = tokenFromFile(path, 0);
  assert.equal(await token(), 'Bearer first');
  writeFileSync(path, 'second\n');
  utimesSync(path, new Date(), new Date(Date.now() + 5_000));
  assert.equal(await token(), 'Bearer second');
  const access = kubeconfigFileAccess(kubeconfig('token-file.yaml', { tokenFile: 'token' }));
  assert.equal((await access?.headers())?.authorization, 'Bearer second');
});

test('users with a plugin, basic auth or impersonation, and clusters behind a proxy, are left to the library', () => {
  const left: [Record<string, unknown>, Record<string, unknown>][] = [
    [{ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws' } }, {}],
    [{ 'auth-provider': { name: 'oidc' } }, {}],
    [{ username: 'u', password: 'p' }, {}],
    [{ token: 't', as: 'someone' }, {}],
    [{ token: 't' }, { 'proxy-url': 'http://proxy:3128' }],
  ];
  for (const [i, [user, cluster]] of left.entries()) {
    assert.equal(kubeconfigFileAccess(kubeconfig(`left-${i}.yaml`, user, cluster)), undefined);
  }
});

test('loadClusterAccess: KUBECONFIG first; a plugin user goes through @kubernetes/client-node', async () => {
  const plain = kubeconfig('plain.yaml', { token: 'abc' });
  const direct = await loadClusterAccess({ KUBECONFIG: plain, HOME: dir });
  assert.match(direct.source, /^kubeconfig .*plain\.yaml, context main$/);
  // An exec plugin that prints an ExecCredential, as aws or gke-gcloud-auth-plugin do.
  const credential = JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: { token: 'from-plugin' },
  });
  const plugin = kubeconfig('plugin.yaml', {
    exec: {
      apiVersion: 'client.authentication.k8s.io/v1',
      command: process.execPath,
      args: ['-e', `process.stdout.write(${JSON.stringify(credential)})`],
      interactiveMode: 'Never',
    },
  });
  const viaLibrary = await loadClusterAccess({ KUBECONFIG: plugin, HOME: dir });
  assert.match(viaLibrary.source, /@kubernetes\/client-node/);
  assert.equal(viaLibrary.server, 'https://127.0.0.1:6443');
  assert.equal((await viaLibrary.headers())?.authorization, 'Bearer from-plugin');
  // Impersonation (`as`) is the library's too, and its header reaches every request.
  const impersonating = kubeconfig('as.yaml', { token: 'abc', as: 'someone' });
  const asSomeone = await loadClusterAccess({ KUBECONFIG: impersonating, HOME: dir });
  assert.deepEqual(await asSomeone.headers(), {
    authorization: 'Bearer abc',
    'impersonate-user': 'someone',
  });
});

test('in a pod: the service address and the mounted token and CA', async () => {
  const sa = join(dir, 'serviceaccount');
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), 'pod-token');
  writeFileSync(join(sa, 'ca.crt'), 'CLUSTER CA');
  const access = inClusterAccess(
    { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
    sa,
  );
  assert.equal(access.server, 'https://[fd00::1]:443');
  assert.equal(access.ca, 'CLUSTER CA');
  assert.equal((await access.headers())?.authorization, 'Bearer pod-token');
});

test('no kubeconfig and not in a pod: an error that says so', async () => {
  await assert.rejects(loadClusterAccess({ HOME: dir }), /not in a pod: KUBERNETES_SERVICE_HOST/);
});

test('a kubeconfig without a current context or with a dangling name is refused, naming the file', () => {
  const file = join(dir, 'broken.yaml');
  writeFileSync(file, stringify({ contexts: [], clusters: [], users: [] }));
  assert.throws(() => kubeconfigFileAccess(file), /broken\.yaml: no current-context/);
  writeFileSync(file, stringify({ 'current-context': 'x', contexts: [], clusters: [], users: [] }));
  assert.throws(() => kubeconfigFileAccess(file), /broken\.yaml: no context named x/);
});
