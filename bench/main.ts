import { benchBackup } from './backup.ts';
import { benchConnections } from './connections.ts';
import { benchDatabases } from './database.ts';
import { benchDrift } from './drift.ts';
import { benchProvisioning } from './provision.ts';

// `npm run bench`: every benchmark, one after the other on one local stack.
const results = [
  await benchConnections(),
  await benchProvisioning(),
  await benchDatabases(),
  await benchDrift(),
  await benchBackup(),
];
if (results.includes(false)) process.exitCode = 1;
