// `ikegw daemon`: runs the gateway (src/daemon/main.ts runDaemon, loaded only here).
import { DEFAULT_CONFIG_PATH } from '../../common/control-protocol.js';
import { isLogLevel, isSubsystem } from '../../common/log-levels.js';
import type { RunOptions } from '../../daemon/main.js';
import { defineCommand, LOG_LEVEL_NOTE, PSK_NOTE } from '../command.js';

/** Parses "--log-level debug" / "info,ike=debug". */
export function parseLogLevelFlag(s: string): RunOptions['logLevel'] | string {
  const out: NonNullable<RunOptions['logLevel']> = { subsystems: {} };
  for (const part of s.split(',').filter((x) => x !== '')) {
    const [a, b] = part.split('=');
    if (b === undefined) {
      if (!a || !isLogLevel(a)) return `unknown log level "${a}"`;
      out.level = a;
    } else {
      if (!a || !isSubsystem(a)) return `unknown subsystem "${a}"`;
      if (!isLogLevel(b)) return `unknown log level "${b}"`;
      out.subsystems[a] = b;
    }
  }
  return out;
}

export const command = defineCommand({
  name: 'daemon',
  synopsis: 'daemon [-c FILE] [--from-env] [--log-level LEVEL]',
  summary: `run the IKEv2 gateway (default config ${DEFAULT_CONFIG_PATH});
--from-env builds the chart's connection from IKEGW_PEER,
IKEGW_PSK_FILE|IKEGW_PSK and VPN_* instead of a file`,
  notes: [`${LOG_LEVEL_NOTE}${PSK_NOTE}`],
  options: {
    config: { type: 'string', short: 'c' },
    'from-env': { type: 'boolean' },
    'log-level': { type: 'string' },
  },
  async run({ values }, io) {
    let logLevel: RunOptions['logLevel'];
    if (values['log-level'] !== undefined) {
      const p = parseLogLevelFlag(values['log-level']);
      if (typeof p === 'string') {
        io.stderr(`ikegw: --log-level: ${p}\n`);
        return 2;
      }
      logLevel = p;
    }
    const { runDaemon } = await import('../../daemon/main.js');
    return runDaemon({
      fromEnv: values['from-env'] ?? false,
      env: io.env,
      stderr: io.stderr,
      ...(values.config ? { configPath: values.config } : {}),
      ...(logLevel ? { logLevel } : {}),
      ...(io.stop ? { stop: io.stop } : {}),
      ...(io.logDestination ? { logDestination: io.logDestination } : {}),
      ...(io.onReady ? { onReady: io.onReady } : {}),
    });
  },
});
