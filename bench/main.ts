import { benchDatabases } from './database.ts';
import { benchProvisioning } from './provision.ts';

// `npm run bench`: every benchmark, one after the other on one local stack.
const results = [await benchProvisioning(), await benchDatabases()];
if (results.includes(false)) process.exitCode = 1;
