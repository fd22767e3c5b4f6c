// `ikegw stats`: the daemon's counters, readiness, data path and log levels.
import { CONTROL_NOTE, defineCommand } from '../command.js';
import { CONTROL_OPTIONS, controlSocket, runControlCommand } from '../control-client.js';

export const command = defineCommand({
  name: 'stats',
  synopsis: 'stats [--json]',
  summary: 'daemon counters, readiness, data path, log levels',
  notes: [CONTROL_NOTE],
  options: CONTROL_OPTIONS,
  async run({ values }, io) {
    // printed as JSON either way
    return runControlCommand(await controlSocket(values, io.env), { cmd: 'stats' }, io, {
      json: values.json,
    });
  },
});
