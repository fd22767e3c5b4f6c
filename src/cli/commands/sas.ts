// `ikegw sas`: the IKE_SAs and CHILD_SAs, like `swanctl --list-sas`.
import type { SaStatus } from '../../common/control-protocol.js';
import { CONTROL_NOTE, defineCommand } from '../command.js';
import { CONTROL_OPTIONS, controlSocket, EXIT, runControlCommand } from '../control-client.js';

/** `ikegw sas` in the spirit of `swanctl --list-sas` (the asterisk marks our own IKE SPI). */
export function formatSas(list: SaStatus[]): string {
  if (list.length === 0) return 'no IKE_SAs\n';
  const out: string[] = [];
  const num = (n: number | undefined): string => (n === undefined ? '?' : String(n));
  for (const sa of list) {
    const i = sa.role === 'initiator' ? '*' : '';
    const r = sa.role === 'responder' ? '*' : '';
    out.push(`${sa.conn}: #${sa.uid}, ${sa.state}, IKEv2, ${sa.spiI}_i${i} ${sa.spiR}_r${r}`);
    const nat = (b: boolean): string => (b ? ' (behind NAT)' : '');
    out.push(`  local  '${sa.localId}' @ ${sa.local}${nat(sa.natLocal)}`);
    out.push(`  remote '${sa.remoteId}' @ ${sa.remote}${nat(sa.natRemote)}`);
    if (sa.algorithms) out.push(`  ${sa.algorithms}`);
    if (sa.establishedSecondsAgo !== undefined) {
      const rekey = sa.rekeyInSeconds !== undefined ? `, rekeying in ${sa.rekeyInSeconds}s` : '';
      out.push(`  established ${sa.establishedSecondsAgo}s ago${rekey}`);
    }
    for (const c of sa.children) {
      const mode = c.encap ? 'TUNNEL-in-UDP' : 'TUNNEL';
      out.push(`  ${c.name}: #${c.uid}, reqid ${c.reqid}, ${c.state}, ${mode}, ESP:${c.algorithms}`);
      if (c.installedSecondsAgo !== undefined) {
        const parts = [`installed ${c.installedSecondsAgo}s ago`];
        if (c.rekeyInSeconds !== undefined) parts.push(`rekeying in ${c.rekeyInSeconds}s`);
        if (c.expiresInSeconds !== undefined) parts.push(`expires in ${c.expiresInSeconds}s`);
        out.push(`    ${parts.join(', ')}`);
      }
      out.push(`    in  ${c.spiIn}, ${num(c.bytesIn)} bytes, ${num(c.packetsIn)} packets`);
      out.push(`    out ${c.spiOut}, ${num(c.bytesOut)} bytes, ${num(c.packetsOut)} packets`);
      out.push(`    local  ${c.localTs.join(' ')}`);
      out.push(`    remote ${c.remoteTs.join(' ')}`);
    }
  }
  return `${out.join('\n')}\n`;
}

export const command = defineCommand({
  name: 'sas',
  synopsis: 'sas [--json]',
  summary: `list IKE_SAs and CHILD_SAs: state, algorithms, SPIs, selectors,
bytes, packets, times (like swanctl --list-sas)`,
  notes: [CONTROL_NOTE],
  options: CONTROL_OPTIONS,
  async run({ values }, io) {
    return runControlCommand(await controlSocket(values, io.env), { cmd: 'sas' }, io, {
      json: values.json,
      print: (result, out) => {
        out.stdout(formatSas(result as SaStatus[]));
        return EXIT.ok;
      },
    });
  },
});
