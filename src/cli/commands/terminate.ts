// `ikegw terminate CONN`: deletes the IKE_SAs (and CHILD_SAs) of a connection and waits for it.
import { CONTROL_NOTE, defineCommand } from '../command.js';
import { CONTROL_OPTIONS, controlSocket, EXIT, parseTimeout, runControlCommand } from '../control-client.js';

export const command = defineCommand({
  name: 'terminate',
  synopsis: 'terminate CONN [--timeout S]',
  summary: 'delete the IKE_SAs (and CHILD_SAs) of a connection',
  notes: [CONTROL_NOTE],
  options: { ...CONTROL_OPTIONS, timeout: { type: 'string' } },
  async run({ values, positionals: [conn] }, io) {
    if (!conn) {
      io.stderr('ikegw terminate: which connection? usage: ikegw terminate CONN\n');
      return EXIT.usage;
    }
    const timeoutMs = parseTimeout('terminate', values.timeout);
    if (typeof timeoutMs === 'object') {
      io.stderr(timeoutMs.error);
      return EXIT.usage;
    }
    const req = { cmd: 'terminate' as const, conn, ...(timeoutMs ? { timeoutMs } : {}) };
    return runControlCommand(await controlSocket(values, io.env), req, io, {
      json: values.json,
      print: (result, out) => {
        out.stdout(`${(result as { message: string }).message}\n`);
        return EXIT.ok;
      },
    });
  },
});
