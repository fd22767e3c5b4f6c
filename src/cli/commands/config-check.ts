// `ikegw config check [FILE]`: validates a configuration (or --from-env) with the daemon's own
// loader; every error with its field, exit 2 when there is one.
import { DEFAULT_CONFIG_PATH } from '../../common/control-protocol.js';
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'config check',
  synopsis: 'config check [FILE] [--from-env]',
  summary: 'validate a configuration; exit 0 if valid, 2 with every error if not',
  options: { config: { type: 'string', short: 'c' }, 'from-env': { type: 'boolean' } },
  async run({ values, positionals: [sub, file] }, io) {
    if (sub !== 'check') {
      io.stderr(`ikegw: unknown config subcommand ${sub ?? '(none)'}; try "ikegw config check FILE"\n`);
      return 2;
    }
    const fromEnv = values['from-env'] ?? false;
    const configPath = file ?? values.config;
    const { loadFromOptions, printConfigProblems } = await import('../../daemon/config.js');
    const r = loadFromOptions({ fromEnv, env: io.env, ...(configPath ? { configPath } : {}) });
    printConfigProblems(r, io.stderr);
    if (!r.ok) return 2;
    const conns = r.value.engine.connections;
    const children = conns.reduce((n, c) => n + c.children.length, 0);
    io.stdout(
      `${fromEnv ? 'environment' : (configPath ?? DEFAULT_CONFIG_PATH)}: OK (${conns.length} connection${conns.length === 1 ? '' : 's'}: ${conns.map((c) => c.name).join(', ')}; ${children} child${children === 1 ? '' : 'ren'})\n`,
    );
    return 0;
  },
});
