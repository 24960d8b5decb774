import { pino, type Logger } from 'pino';

// JSON lines, one logger for the process; modules take a child. The
// operator logs to stdout; a CLI command whose stdout is its answer (backup
// list --json) logs to stderr, so its output stays parseable. On a terminal
// (`npm start`, a developer's shell) the lines are made readable by
// pino-pretty, in a worker thread that is only started then; anywhere else
// (a pod, a pipe, the tests) they stay JSON. LOG_FORMAT=json|pretty decides
// instead.
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
  const fd = stream === 'stdout' ? 1 : 2;
  const terminal = (stream === 'stdout' ? process.stdout : process.stderr).isTTY === true;
  const format = process.env.LOG_FORMAT ?? (terminal ? 'pretty' : 'json');
  if (format === 'pretty') {
    return pino(
      options,
      pino.transport({
        target: 'pino-pretty',
        options: {
          destination: fd,
          colorize: terminal,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname,component',
        },
      }),
    );
  }
  return stream === 'stdout' ? pino(options) : pino(options, pino.destination(2));
}
