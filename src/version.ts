import { readFileSync } from 'node:fs';

// The operator's version, as the package says: recorded in what it certifies.
export const OPERATOR_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
