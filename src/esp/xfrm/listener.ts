// Kernel events on XFRM multicast groups -> KernelEvent (strongSwan kernel_listener_t; the
// receive_events()/process_acquire()/process_expire()/process_mapping() trio of
// kernel_netlink_ipsec.c).
//
//   XFRMNLGRP_ACQUIRE  XFRM_MSG_ACQUIRE  xfrm_user_acquire + XFRMA_TMPL   -> acquire{reqid, src, dst}
//   XFRMNLGRP_EXPIRE   XFRM_MSG_EXPIRE   xfrm_user_expire (state, hard)    -> expire{spi, dst, hard}
//   XFRMNLGRP_MAPPING  XFRM_MSG_MAPPING  xfrm_user_mapping                 -> mapping{spi, dst, newRemote}
//
// Only events about ikegw's own objects (reqid in its range, see installer.ts) are delivered, with
// the reqid translated back to the core's. A malformed event is dropped and counted; one warning
// per kind of problem is logged.
import type { KernelEvent } from '../../ike/ports.js';
import { decodeNlMessages, kernelError, type NlMessage, openChannel } from './client.js';
import {
  decodeBody,
  decodeTmpls,
  findAttr,
  IPPROTO_ESP,
  Xfrma,
  XfrmMsg,
  XfrmNlGrp,
  XfrmUserAcquire,
  XfrmUserExpire,
  XfrmUserMapping,
  xfrmToAddr,
} from './structs.js';
import type { DatagramChannel, RelayTarget } from './transport.js';

export interface ReqidRange {
  /** Kernel reqid = base + core reqid. */
  base: number;
  span: number;
}

export function toKernelReqid(r: ReqidRange, reqid: number): number | undefined {
  if (!Number.isInteger(reqid) || reqid < 0 || reqid >= r.span) return undefined;
  return (r.base + reqid) >>> 0;
}

export function fromKernelReqid(r: ReqidRange, kernel: number): number | undefined {
  const d = (kernel >>> 0) - r.base;
  return d >= 0 && d < r.span ? d : undefined;
}

/** Decodes one event message; undefined when it is not ours or not an event we deliver. */
export function decodeEvent(m: NlMessage, range: ReqidRange): KernelEvent | undefined {
  switch (m.type) {
    case XfrmMsg.ACQUIRE: {
      const { body, attrs } = decodeBody(XfrmUserAcquire, m.payload);
      const t = findAttr(attrs, Xfrma.TMPL);
      const tmpl = t ? decodeTmpls(t)[0] : undefined;
      if (!tmpl || (tmpl.id.proto !== IPPROTO_ESP && tmpl.id.proto !== 0)) return undefined;
      const reqid = fromKernelReqid(range, tmpl.reqid);
      if (reqid === undefined) return undefined;
      // The selector holds the packet that hit the policy (strongSwan selector2ts).
      const fam = body.sel.family || body.policy.sel.family;
      return {
        kind: 'acquire',
        reqid,
        src: xfrmToAddr(fam, body.sel.saddr),
        dst: xfrmToAddr(fam, body.sel.daddr),
      };
    }
    case XfrmMsg.EXPIRE: {
      const { body } = decodeBody(XfrmUserExpire, m.payload);
      if (body.state.id.proto !== IPPROTO_ESP) return undefined;
      if (fromKernelReqid(range, body.state.reqid) === undefined) return undefined;
      return {
        kind: 'expire',
        spi: body.state.id.spi,
        dst: xfrmToAddr(body.state.family, body.state.id.daddr),
        hard: body.hard !== 0,
      };
    }
    case XfrmMsg.MAPPING: {
      const { body } = decodeBody(XfrmUserMapping, m.payload);
      if (body.id.proto !== IPPROTO_ESP) return undefined;
      if (fromKernelReqid(range, body.reqid) === undefined) return undefined;
      return {
        kind: 'mapping',
        spi: body.id.spi,
        dst: xfrmToAddr(body.id.family, body.id.daddr),
        newRemote: { address: xfrmToAddr(body.id.family, body.new_saddr), port: body.new_sport },
      };
    }
    default:
      return undefined;
  }
}

export interface ListenerStats {
  events: number;
  ignored: number;
  malformed: number;
}

export class XfrmListener {
  readonly stats: ListenerStats = { events: 0, ignored: 0, malformed: 0 };
  private fn: ((ev: KernelEvent) => void) | undefined;
  private readonly warned = new Set<string>();

  private constructor(
    private readonly ch: DatagramChannel,
    private readonly range: ReqidRange,
    private readonly onWarning: (msg: string) => void,
  ) {
    ch.onDatagram((d) => this.receive(d));
    ch.onLost((why) =>
      this.warn('lost', `XFRM event socket lost (${why}): no more acquire/expire/mapping events`),
    );
  }

  /** Opens the event socket and joins ACQUIRE, EXPIRE and MAPPING. */
  static async open(
    range: ReqidRange,
    opts: { netns?: RelayTarget; onWarning?: (msg: string) => void } = {},
  ): Promise<XfrmListener> {
    const ch = await openChannel(opts.netns);
    const l = new XfrmListener(ch, range, opts.onWarning ?? (() => {}));
    try {
      for (const g of [XfrmNlGrp.ACQUIRE, XfrmNlGrp.EXPIRE, XfrmNlGrp.MAPPING]) await ch.join(g);
    } catch (e) {
      ch.close();
      const errno = (e as { errno?: number }).errno ?? 5;
      throw kernelError('listen', errno, (e as Error).message);
    }
    ch.setRef(false);
    return l;
  }

  setListener(fn: ((ev: KernelEvent) => void) | undefined): void {
    this.fn = fn;
  }

  close(): void {
    this.fn = undefined;
    this.ch.close();
  }

  private warn(kind: string, msg: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.onWarning(msg);
  }

  /** Public for tests: feeds one raw datagram as if the kernel had sent it. */
  receive(d: Uint8Array): void {
    let msgs: NlMessage[];
    try {
      msgs = decodeNlMessages(d);
    } catch (e) {
      this.stats.malformed++;
      this.warn('malformed', `dropped a malformed XFRM event datagram: ${(e as Error).message}`);
      return;
    }
    for (const m of msgs) {
      let ev: KernelEvent | undefined;
      try {
        ev = decodeEvent(m, this.range);
      } catch (e) {
        this.stats.malformed++;
        this.warn(
          `malformed-${m.type}`,
          `dropped a malformed XFRM event (type ${m.type}): ${(e as Error).message}`,
        );
        continue;
      }
      if (!ev) {
        this.stats.ignored++;
        continue;
      }
      this.stats.events++;
      try {
        this.fn?.(ev);
      } catch (e) {
        this.warn('callback', `kernel event listener threw: ${(e as Error).message}`);
      }
    }
  }
}
