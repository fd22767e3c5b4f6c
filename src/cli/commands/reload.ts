// `ikegw reload` (the daemon does the same on SIGHUP): re-reads the configuration; one line per
// connection (added, removed, updated, re-established, unchanged); exit 1 when changes are left for
// the next start.
import type { ReloadOutcome } from '../../common/control-protocol.js';
import { CONTROL_NOTE, defineCommand } from '../command.js';
import {
  CONTROL_OPTIONS,
  type ControlCliIo,
  controlSocket,
  EXIT,
  runControlCommand,
} from '../control-client.js';

function printReload(result: unknown, io: ControlCliIo): number {
  const r = result as ReloadOutcome;
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  io.stdout('configuration valid\n');
  for (const c of r.connections ?? [])
    io.stdout(`  ${c.conn}: ${c.action}${'fields' in c ? ` (${c.fields.join(', ')})` : ''}\n`);
  const other = r.applied.filter((a) => !a.startsWith('connection '));
  if (other.length) io.stdout(`applied: ${other.join('; ')}\n`);
  if (r.pending.length === 0) return EXIT.ok;
  io.stdout(
    `not applied (they take effect when ikegw restarts):\n${r.pending.map((p) => `  - ${p}`).join('\n')}\nrestart the daemon to apply them (Kubernetes: kubectl rollout restart statefulset/<release>-vpn-frontend)\n`,
  );
  return EXIT.failed;
}

export const command = defineCommand({
  name: 'reload',
  synopsis: 'reload',
  summary: `re-read the configuration (the daemon does the same on SIGHUP):
log levels apply at once; other changes are listed and apply
at the next start`,
  notes: [CONTROL_NOTE],
  options: CONTROL_OPTIONS,
  async run({ values }, io) {
    return runControlCommand(await controlSocket(values, io.env), { cmd: 'reload' }, io, {
      json: values.json,
      print: printReload,
      status: (r) => ((r as ReloadOutcome).pending.length > 0 ? EXIT.failed : EXIT.ok),
    });
  },
});
