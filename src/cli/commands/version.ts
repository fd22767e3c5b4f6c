// `ikegw version` (also `ikegw --version`, `-V`).
import { version } from '../../common/version.js';
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'version',
  synopsis: 'version',
  summary: 'print the version',
  options: {},
  run(_args, io) {
    io.stdout(`ikegw ${version()} (node ${process.version})\n`);
    return 0;
  },
});
