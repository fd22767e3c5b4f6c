// Waiting for states, never for time: a log line says that something happened, not that every
// table a peer keeps already shows it (strongSwan logs AUTHENTICATION_FAILED, then destroys the
// IKE_SA), and a sleep is either too short on a loaded machine or wasted on an idle one. These poll
// the state itself until it is what the test expects, with a bounded deadline.
import type { Charon, ParsedSa } from './lab.js';

/**
 * Polls `probe` until it returns something other than undefined and returns that; throws after
 * `timeoutMs` naming `what` (and, with `describe`, the last state seen).
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs?: number; intervalMs?: number; describe?: () => string | Promise<string> } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      const last = opts.describe ? `; last state:\n${await opts.describe()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

function summary(sas: ParsedSa[]): string {
  if (sas.length === 0) return '  (no IKE_SA)';
  return sas
    .map(
      (sa) =>
        `  ${sa.name} ${sa.state} ${sa.spiI}_i ${sa.spiR}_r; children: ${
          sa.children.map((c) => `${c.name} ${c.state} ${c.spiIn}/${c.spiOut}`).join(', ') || 'none'
        }`,
    )
    .join('\n');
}

/**
 * Polls `swanctl --list-sas` on `c` until `pred` holds for the list and returns that list; throws
 * after `timeoutMs` (default 10 s) with the last list and the end of charon's log.
 */
export async function waitForSas(
  c: Charon,
  what: string,
  pred: (sas: ParsedSa[]) => boolean,
  timeoutMs = 10_000,
): Promise<ParsedSa[]> {
  let last: ParsedSa[] = [];
  return until(
    `strongSwan to hold ${what}`,
    async () => {
      last = await c.listSas();
      return pred(last) ? last : undefined;
    },
    { timeoutMs, describe: () => `${summary(last)}\n--- strongSwan log ---\n${c.logTail(40)}` },
  );
}

/** One IKE_SA, ESTABLISHED, with one CHILD_SA, INSTALLED. */
export function oneTunnel(sas: ParsedSa[]): boolean {
  return (
    sas.length === 1 &&
    sas[0]!.state === 'ESTABLISHED' &&
    sas[0]!.children.length === 1 &&
    sas[0]!.children[0]!.state === 'INSTALLED'
  );
}

/**
 * What a `ping -n` log says about losses: the icmp_seq numbers of every request up to the last
 * answered one that got no reply. The requests still in flight when SIGINT stops ping count as
 * transmitted but are no losses (under load a reply can take 100+ ms).
 */
export function pingLosses(log: string): { last: number; lost: number[] } {
  const answered = new Set([...log.matchAll(/bytes from .*icmp_seq=(\d+) /g)].map((m) => Number(m[1])));
  const last = answered.size ? Math.max(...answered) : 0;
  const lost = Array.from({ length: last }, (_, i) => i + 1).filter((seq) => !answered.has(seq));
  return { last, lost };
}
