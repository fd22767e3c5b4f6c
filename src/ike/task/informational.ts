// INFORMATIONAL exchanges (RFC 7296 §1.4): liveness checks (DPD), DELETE of IKE and CHILD SAs.
//
//   HDR, SK { [N,] [D,] [CP,] ... }  -->
//                        <--  HDR, SK { [N,] [D,] [CP,] ... }
import { uninstallChild } from '../sa/child-sa.js';
import type { IkeSa } from '../sa/ike-sa.js';
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
    ctx.destroy(sa, 'deleted by peer');
    return;
  }
  const answer: Payload[] = [];
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
        `received DELETE for CHILD_SA ${child.cfg.name} (SPI out ${spi.toString(16)})`,
        sa,
      );
      ourSpis.push(u32(child.spiIn));
      uninstallChild(ctx, sa, child);
      ctx.emit({
        ev: 'child-state',
        sa: ctx.ref(sa),
        child: child.cfg.name,
        uid: child.uid,
        state: 'DELETED',
        spiIn: child.spiIn,
        spiOut: child.spiOut,
        detail: 'deleted by peer',
      });
    }
  }
  sa.children = sa.children.filter((c) => c.state !== 'DELETED');
  if (ourSpis.length) answer.push(del(ProtocolId.ESP, 4, ourSpis));
  ctx.respond(sa, req, reqBytes, answer);
}

/** Send an empty INFORMATIONAL (liveness check, RFC 7296 §2.4). */
export function sendDpd(ctx: EngineCtx, sa: IkeSa, onDead: () => void): void {
  ctx.request(sa, ExchangeType.INFORMATIONAL, [], {
    what: 'DPD',
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
