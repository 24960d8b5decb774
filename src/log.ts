import { pino, type Logger } from 'pino';

// JSON lines, one logger for the process; modules take a child. The
// operator logs to stdout; a CLI command whose stdout is its answer (backup
// list --json) logs to stderr, so its output stays parseable.
export function createLogger(
  level = process.env.LOG_LEVEL ?? 'info',
  stream: 'stdout' | 'stderr' = 'stdout',
): Logger {
  const options = {
    level,
    base: { component: 'tenant-operator' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return stream === 'stdout' ? pino(options) : pino(options, pino.destination(2));
}
