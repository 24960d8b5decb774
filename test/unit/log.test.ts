import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

// Log lines: JSON wherever a machine reads them (a pipe, a pod), readable
// lines on a terminal or when LOG_FORMAT=pretty asks. Run in a child
// process, because the choice is made from the process's own stdout.

const REPO = join(import.meta.dirname, '..', '..');
const SCRIPT =
  "import { createLogger } from './src/log.ts'; createLogger().info({ tenant: 'acme' }, 'tenant is ready');";

function logOnce(env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test('a pipe gets one JSON object per line', () => {
  const line = JSON.parse(logOnce({})) as Record<string, unknown>;
  assert.equal(line.level, 'info');
  assert.equal(line.msg, 'tenant is ready');
  assert.equal(line.tenant, 'acme');
});

test('LOG_FORMAT=pretty gives a readable line with its fields', () => {
  const line = logOnce({ LOG_FORMAT: 'pretty' });
  assert.match(line, /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: tenant is ready/);
  assert.match(line, /tenant: "acme"/);
  assert.throws(() => JSON.parse(line));
});
