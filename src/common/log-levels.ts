// The vocabulary of log levels and subsystems, shared by the daemon's logging (src/daemon/log.ts,
// which re-exports it), its configuration and the `ikegw log-level` / `--log-level` command line.
// Kept apart from log.ts so that the CLI can check a level without loading pino.

export const SUBSYSTEMS = ['daemon', 'ike', 'child', 'net', 'kernel', 'config', 'k8s'] as const;
export type Subsystem = (typeof SUBSYSTEMS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isSubsystem(s: string): s is Subsystem {
  return (SUBSYSTEMS as readonly string[]).includes(s);
}
export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}
