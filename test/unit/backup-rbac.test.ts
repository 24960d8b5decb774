import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildBackupJobClusterRole,
  buildBackupJobClusterRoleBinding,
  buildBackupJobSecretsRole,
} from '../../src/backup/rbac.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

test('the backup-job ClusterRole reads and records, never deletes, never reads Secrets', () => {
  const rules = buildBackupJobClusterRole().rules as Rule[];
  const verbs = rules.flatMap((r) => r.verbs);
  assert.ok(!verbs.includes('delete') && !verbs.includes('*'));
  assert.ok(rules.every((r) => !r.resources.includes('secrets') && !r.resources.includes('*')));
  assert.deepEqual(rules.find((r) => r.resources.includes('tenantbackups'))?.verbs, [
    'create',
    'get',
    'list',
    'patch',
  ]);
  const binding = buildBackupJobClusterRoleBinding('ops');
  assert.deepEqual(binding.subjects, [
    { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts:ops' },
  ]);
});

test("the Secrets Role names exactly the stores' Secrets, and has no rule when there are none", () => {
  const role = buildBackupJobSecretsRole('ops', [
    { s3: s3('creds-b', 'ca') },
    { s3: s3('creds-a') },
    { s3: s3('creds-a') },
    {},
  ]);
  assert.equal(role.metadata.namespace, 'ops');
  assert.deepEqual(role.rules, [
    {
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: ['ca', 'creds-a', 'creds-b'],
      verbs: ['get'],
    },
  ]);
  // An empty resourceNames would mean every Secret in the namespace.
  assert.deepEqual(buildBackupJobSecretsRole('ops', [{}]).rules, []);
});

function s3(credentials: string, ca?: string) {
  return {
    bucket: 'b',
    forcePathStyle: false,
    signingRegion: 'us-east-1',
    credentialsSecret: { name: credentials },
    ...(ca ? { caSecret: { name: ca, key: 'ca.crt' } } : {}),
  };
}
