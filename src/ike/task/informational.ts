// INFORMATIONAL exchanges (RFC 7296 §1.4): liveness checks (DPD), DELETE of IKE and CHILD SAs.
//
//   HDR, SK { [N,] [D,] [CP,] ... }  -->
//                        <--  HDR, SK { [N,] [D,] [CP,] ... }
import { installOutbound } from '../sa/child-sa.js';
import type { ChildSa, IkeSa } from '../sa/ike-sa.js';
import { ExchangeType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import type { EngineCtx } from './context.js';
import { del, findAll, readU32, u32 } from './payloads.js';

/** Responder side of any INFORMATIONAL request. */
export function processInformationalRequest(
  ctx: EngineCtx,
  sa: IkeSa,
  req: IkeMessage,
  reqBytes: Uint8Array,
  ps: Payload[],
): void {
  const deletes = findAll(ps, PayloadType.DELETE);
  if (deletes.some((d) => d.protocolId === ProtocolId.IKE)) {
    // RFC 7296 §1.4.1: the peer deletes the IKE_SA (and with it every CHILD_SA); answer empty.
    ctx.log('info', 'ike', 'received DELETE for IKE_SA', sa);
    ctx.respond(sa, req, reqBytes, []);
    // A redundant IKE_SA of a rekey collision that we only saw as responder, while our own rekey of
    // the old IKE_SA is still waiting for its answer: the CHILD_SAs go back to the old IKE_SA (our
    // rekey's answer moves them to the surviving one) instead of going down with this one.
    const old = sa.predecessor;
    if (sa.children.length && old && old.state !== 'DESTROYED' && old.ikeRekey && !old.ikeRekey.newSa) {
      ctx.moveChildren(sa, old);
    }
    ctx.destroy(sa, sa.state === 'REKEYED' ? 'rekeyed' : 'deleted by peer');
    return;
  }
  const ourSpis: Uint8Array[] = [];
  for (const d of deletes) {
    if (d.protocolId !== ProtocolId.ESP) continue;
    for (const spiBytes of d.spis) {
      if (spiBytes.length !== 4) continue;
      const spi = readU32(spiBytes);
      // The SPIs in a DELETE are the sender's inbound SPIs = our outbound ones.
      const child = sa.children.find((c) => c.spiOut === spi && c.state !== 'DELETED');
      if (!child) continue;
      ctx.log(
        'info',
        'child',
        `received DELETE for CHILD_SA ${child.cfg.name} (SPI ${spi.toString(16).padStart(8, '0')})`,
        sa,
      );
      // A CHILD_SA the peer rekeyed: switch to the successor's outbound SA now (make-before-break).
      const successor = child.rekeyedByPeer?.newChild;
      if (successor && successor.state === 'INSTALLED') installOutbound(ctx, sa, successor);
      // RFC 7296 §1.4.1: crossing DELETEs for the same CHILD_SA are answered without a Delete payload.
      if (child.state !== 'DELETING') ourSpis.push(u32(child.spiIn));
      ctx.removeChild(
        sa,
        child,
        child.state === 'DELETING' ? 'deleted (crossing DELETEs)' : 'deleted by peer',
      );
    }
  }
  ctx.respond(sa, req, reqBytes, ourSpis.length ? [del(ProtocolId.ESP, 4, ourSpis)] : []);
}

/** Delete one CHILD_SA: send DELETE with our inbound SPI, remove it when the peer answers. */
export function sendChildDelete(ctx: EngineCtx, sa: IkeSa, child: ChildSa): void {
  if (child.state === 'DELETING' || child.state === 'DELETED') return;
  child.state = 'DELETING';
  ctx.request(sa, ExchangeType.INFORMATIONAL, [del(ProtocolId.ESP, 4, [u32(child.spiIn)])], {
    what: `DELETE CHILD_SA ${child.cfg.name}`,
    onResponse: () => ctx.removeChild(sa, child, child.replaces || child.rekey ? 'rekeyed' : 'deleted'),
  });
}

/** Send an empty INFORMATIONAL (liveness check, RFC 7296 §2.4). */
export function sendDpd(ctx: EngineCtx, sa: IkeSa, deadlineMs: number | undefined, onDead: () => void): void {
  ctx.request(sa, ExchangeType.INFORMATIONAL, [], {
    what: 'DPD',
    deadlineMs,
    onResponse: () => undefined,
    onTimeout: onDead,
  });
}

/** Delete the IKE_SA: send DELETE, then tear down (without waiting for the answer). */
export function sendIkeDelete(ctx: EngineCtx, sa: IkeSa, reason: string): void {
  if (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING') {
    ctx.request(sa, ExchangeType.INFORMATIONAL, [del(ProtocolId.IKE, 0, [])], {
      what: 'DELETE IKE_SA',
      onResponse: () => undefined,
    });
  }
  ctx.destroy(sa, reason);
}
