// `ikegw initiate CONN`: brings a connection up, prints its progress, exits 0 once its CHILD_SA is
// installed (like `swanctl --initiate`).
import { CONTROL_NOTE, defineCommand } from '../command.js';
import { CONTROL_OPTIONS, controlSocket, EXIT, parseTimeout, runControlCommand } from '../control-client.js';

export const command = defineCommand({
  name: 'initiate',
  synopsis: 'initiate CONN [--child CHILD] [--timeout S]',
  summary: 'bring a connection up and wait until its CHILD_SA is installed',
  notes: [CONTROL_NOTE],
  options: { ...CONTROL_OPTIONS, child: { type: 'string' }, timeout: { type: 'string' } },
  async run({ values, positionals: [conn] }, io) {
    if (!conn) {
      io.stderr('ikegw initiate: which connection? usage: ikegw initiate CONN\n');
      return EXIT.usage;
    }
    const timeoutMs = parseTimeout('initiate', values.timeout);
    if (typeof timeoutMs === 'object') {
      io.stderr(timeoutMs.error);
      return EXIT.usage;
    }
    const req = {
      cmd: 'initiate' as const,
      conn,
      ...(values.child ? { child: values.child } : {}),
      ...(timeoutMs ? { timeoutMs } : {}),
    };
    return runControlCommand(await controlSocket(values, io.env), req, io, {
      json: values.json,
      print: (result, out) => {
        out.stdout(`${(result as { message: string }).message}\n`);
        return EXIT.ok;
      },
    });
  },
});
