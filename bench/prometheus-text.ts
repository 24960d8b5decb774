// The operator's /metrics as the benchmark reads them: the Prometheus text
// format, one sample per line. A metric the benchmark asks for and does not
// find is an error, never a zero: a renamed metric must fail the run.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `where`; throws when there is none. */
export function sumOf(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  const matching = samples.filter(
    (s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v),
  );
  if (matching.length === 0)
    throw new Error(`no sample of ${name} ${JSON.stringify(where)} in the operator's /metrics`);
  return matching.reduce((total, s) => total + s.value, 0);
}
