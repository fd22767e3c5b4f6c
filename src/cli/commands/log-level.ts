// `ikegw log-level [SUBSYS] [LEVEL]`: shows the levels, or sets one subsystem's (or all) at run time.
import { isLogLevel } from '../../common/log-levels.js';
import { CONTROL_NOTE, defineCommand } from '../command.js';
import { CONTROL_OPTIONS, controlSocket, EXIT, runControlCommand } from '../control-client.js';

export const command = defineCommand({
  name: 'log-level',
  synopsis: 'log-level [SUBSYS] [LEVEL]',
  summary: `show, or set at run time (SUBSYS: all daemon ike child net kernel
config k8s)`,
  notes: [CONTROL_NOTE],
  options: CONTROL_OPTIONS,
  async run({ values, positionals: [a1, a2] }, io) {
    // ikegw log-level | ikegw log-level debug | ikegw log-level ike debug
    const req =
      a2 !== undefined
        ? { cmd: 'log-level' as const, subsys: a1, level: a2 }
        : a1 !== undefined && isLogLevel(a1)
          ? { cmd: 'log-level' as const, subsys: '*', level: a1 }
          : a1 !== undefined
            ? undefined
            : { cmd: 'log-level' as const };
    if (!req) {
      io.stderr(`ikegw log-level: "${a1}" is not a level; usage: ikegw log-level [SUBSYS] LEVEL\n`);
      return EXIT.usage;
    }
    return runControlCommand(await controlSocket(values, io.env), req, io, {
      json: values.json,
      print: (result, out) => {
        const levels = result as Record<string, string>;
        out.stdout(
          `${Object.entries(levels)
            .map(([k, v]) => `${k.padEnd(7)} ${v}`)
            .join('\n')}\n`,
        );
        return EXIT.ok;
      },
    });
  },
});
