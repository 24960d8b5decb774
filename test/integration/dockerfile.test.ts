import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { requireEnv } from '../support/cluster.ts';

// The image, checked without a Docker engine: BuildKit's own Dockerfile
// checks (hack/tools/dockerfile-lint, what `docker build --check` runs), and
// the Dockerfile kept in step with the chart and package.json.

const ROOT = join(import.meta.dirname, '..', '..');
const DOCKERFILE = join(ROOT, 'Dockerfile');
const work = mkdtempSync(join(tmpdir(), 'dockerfile-'));
after(() => rmSync(work, { recursive: true, force: true }));

function lint(file: string) {
  const run = spawnSync(requireEnv('DOCKERFILE_LINT'), [file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status ?? -1, output: run.stdout + run.stderr };
}

/** The instructions of the last stage (the image that ships). */
function finalStage(text: string): string[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const lastFrom = lines.map((l) => /^FROM /i.test(l)).lastIndexOf(true);
  return lines.slice(lastFrom);
}

test("the Dockerfile passes BuildKit's checks", () => {
  const result = lint(DOCKERFILE);
  assert.equal(result.status, 0, result.output);
});

test('the checks can fail: a bad Dockerfile is reported rule by rule', () => {
  const bad = join(work, 'Dockerfile');
  writeFileSync(
    bad,
    ['FROM node:24 as build', 'ENV PASSWORD=hunter2', 'FROM build', 'CMD node main.js', ''].join(
      '\n',
    ),
  );
  const result = lint(bad);
  assert.equal(result.status, 1, result.output);
  for (const rule of ['FromAsCasing', 'SecretsUsedInArgOrEnv', 'JSONArgsRecommended'])
    assert.match(result.output, new RegExp(`:\\d+: ${rule}: `));
});

test('the image keeps in step with the chart and package.json', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const stage = finalStage(text);
  // The chart runs the pod as 65532:65532 and non-root.
  const chart = readFileSync(
    join(ROOT, 'charts', 'tenant-operator', 'templates', 'deployment.yaml'),
    'utf8',
  );
  assert.match(chart, /runAsUser: 65532/);
  assert.match(chart, /runAsGroup: 65532/);
  assert.ok(stage.includes('USER 65532:65532'), stage.join('\n'));
  // Every stage on the Node major package.json requires, an even (LTS) one.
  const engines = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    }
  ).engines.node;
  const major = Number(/>=(\d+)/.exec(engines)?.[1]);
  assert.ok(major >= 24 && major % 2 === 0, engines);
  const bases = [...text.matchAll(/^FROM\s+node:(\d+)-/gm)].map((m) => Number(m[1]));
  assert.ok(bases.length >= 2, 'a build stage and the final one');
  assert.deepEqual(new Set(bases), new Set([major]));
  // pg_dump and pg_restore for the backup jobs; no compilers in what ships.
  assert.ok(
    stage.some((l) => /postgresql-client/.test(l)),
    stage.join('\n'),
  );
  assert.ok(!stage.some((l) => /\b(build-essential|gcc|g\+\+|make|python3)\b/.test(l)));
  assert.ok(
    stage.some((l) => /^COPY --from=/.test(l)),
    'the final stage copies from the build stage',
  );
});

test('what the image runs is what the build stage compiles: dist/cli/main.js, from tsconfig.build.json', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const stage = finalStage(text);
  const entrypoint = stage.find((l) => l.startsWith('ENTRYPOINT'));
  assert.equal(entrypoint, 'ENTRYPOINT ["node", "/app/dist/cli/main.js"]');
  assert.ok(stage.includes('COPY --from=build /app/dist ./dist'), stage.join('\n'));
  assert.match(text, /RUN node node_modules\/typescript\/bin\/tsc -p tsconfig\.build\.json/);
  // The same compile, here: it must produce the entry point, and the entry
  // point must run (relative paths such as ../package.json hold in dist/).
  const built = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: ROOT, encoding: 'utf8', timeout: 300_000 },
  );
  assert.equal(built.status, 0, built.stdout + built.stderr);
  const help = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), '--help'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout + help.stderr, /^usage: tenant-operator <command>/m);
});
