// XfrmClient: request/response over NETLINK_XFRM with our own codec (structs.ts).
//
// It sits on the `netlink` package's RawNetlinkSocket (through a DatagramChannel, transport.ts) and
// does the netlink protocol itself rather than through the package's NetlinkSocket.request():
//  - the package turns a kernel NLMSG_ERROR into `Error('Request rejected: EEXIST')`, i.e. a string;
//    parsing struct nlmsgerr here keeps the errno as the kernel sent it, and every failure becomes a
//    KernelError{op, errno, errnoName} that names the operation (contract: ENOENT/ESRCH, EEXIST...);
//  - a GET with NLM_F_ACK is answered by the reply *and then* an ACK; the package resolves on the
//    first and reports the ACK as an unsolicited message. Here a request completes on its ACK (or
//    NLMSG_DONE for dumps), with every message of its sequence number collected before.
// Nothing a kernel (or a broken relay) sends can throw out of here: an undecodable datagram is
// counted and dropped (its request then times out with ETIMEDOUT), an undecodable reply to a typed
// call fails that call with EBADMSG.
import { constants as osConstants } from 'node:os';
import { DecodeError, KernelError } from '../../common/errors.js';
import {
  decodeBody,
  decodeTmpls,
  encodeBody,
  findAttr,
  HOST_LE,
  NLMSG_HDRLEN,
  type NlAttr,
  NlFlag,
  NlMsg,
  nlAlign,
  XfrmAeventId,
  Xfrma,
  XfrmMsg,
  XfrmUserpolicyId,
  XfrmUserpolicyInfo,
  XfrmUsersaFlush,
  XfrmUsersaId,
  XfrmUsersaInfo,
  type XfrmUserspiInfo,
  XfrmUserspiInfo as XfrmUserspiInfoCodec,
  type XfrmUserTmpl,
  XfrmUserTmpl as XfrmUserTmplCodec,
  xfrmMsgName,
} from './structs.js';
import {
  ChannelError,
  type DatagramChannel,
  InProcessChannel,
  RelayChannel,
  type RelayTarget,
} from './transport.js';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** What the kernel's answer means for XFRM, beyond strerror (no extended ACK on this socket). */
const HINTS: Record<string, string> = {
  EPROTONOSUPPORT: 'the kernel has no ESP (esp4/esp6 not built or not loadable)',
  ENOSYS: 'the kernel has no such crypto algorithm (gcm, authenc, chacha20poly1305 modules?)',
  EPERM: 'needs CAP_NET_ADMIN in this network namespace',
};

export function kernelError(op: string, errno: number, detail?: string): KernelError {
  const name = errnoName(errno);
  const hint = HINTS[name];
  return new KernelError(
    op,
    Math.abs(errno),
    name,
    `${op} failed: ${name} (${Math.abs(errno)})${detail ? `: ${detail}` : ''}${hint ? ` — ${hint}` : ''}`,
  );
}

/** A netlink message: struct nlmsghdr + payload. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

export function encodeNlMessage(type: number, flags: number, seq: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(NLMSG_HDRLEN + payload.length);
  const v = new DataView(out.buffer);
  const le = HOST_LE;
  v.setUint32(0, out.length, le);
  v.setUint16(4, type, le);
  v.setUint16(6, flags, le);
  v.setUint32(8, seq, le);
  v.setUint32(12, 0, le);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Splits a datagram into messages; throws DecodeError when a length does not add up. */
export function decodeNlMessages(d: Uint8Array): NlMessage[] {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= d.length) {
    const len = v.getUint32(off, HOST_LE);
    if (len < NLMSG_HDRLEN || off + len > d.length)
      throw new DecodeError(`netlink message at ${off}: length ${len}, datagram has ${d.length - off}`);
    out.push({
      type: v.getUint16(off + 4, HOST_LE),
      flags: v.getUint16(off + 6, HOST_LE),
      seq: v.getUint32(off + 8, HOST_LE),
      pid: v.getUint32(off + 12, HOST_LE),
      payload: d.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += nlAlign(len);
  }
  return out;
}

/** struct nlmsgerr starts with `int error` (negative errno, 0 = ACK). */
function nlError(m: NlMessage): number {
  if (m.payload.length < 4) throw new DecodeError(`NLMSG_ERROR of ${m.payload.length} bytes`);
  return new DataView(m.payload.buffer, m.payload.byteOffset, 4).getInt32(0, HOST_LE);
}

interface Pending {
  op: string;
  dump: boolean;
  msgs: NlMessage[];
  resolve: (m: NlMessage[]) => void;
  reject: (e: KernelError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface XfrmClientOptions {
  /** Where to talk XFRM: this namespace (default), a netns path via a helper, or a fresh netns. */
  netns?: RelayTarget;
  /**
   * Per-request timeout (default 15 000 ms). The kernel answers synchronously; the first SA with a
   * new algorithm may wait for a crypto module to load (seconds in the emulated VM).
   */
  timeoutMs?: number;
  /** Called once per kind of oddity (undecodable datagram, unsolicited message). */
  onWarning?: (msg: string) => void;
}

export interface SaRecord {
  info: XfrmUsersaInfo;
  attrs: NlAttr[];
}

export interface PolicyRecord {
  info: XfrmUserpolicyInfo;
  tmpls: XfrmUserTmpl[];
  attrs: NlAttr[];
}

export async function openChannel(netns?: RelayTarget): Promise<DatagramChannel> {
  if (!netns) return new InProcessChannel();
  try {
    return await RelayChannel.start(netns);
  } catch (e) {
    if (e instanceof ChannelError) throw kernelError('open', e.errno, e.message);
    throw e;
  }
}

export class XfrmClient {
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  private lost: string | undefined;
  private readonly warned = new Set<string>();
  /** Datagrams or messages that could not be used (malformed, unsolicited). */
  readonly stats = { malformed: 0, unsolicited: 0 };

  constructor(
    private readonly ch: DatagramChannel,
    private readonly opts: XfrmClientOptions = {},
  ) {
    ch.onDatagram((d) => this.receive(d));
    ch.onLost((why) => {
      this.lost = why;
      for (const [seq, p] of this.pending) this.finish(seq, p, kernelError(p.op, 5, why));
    });
  }

  static async open(opts: XfrmClientOptions = {}): Promise<XfrmClient> {
    return new XfrmClient(await openChannel(opts.netns), opts);
  }

  get label(): string {
    return this.ch.label;
  }

  close(): void {
    for (const [seq, p] of this.pending) this.finish(seq, p, kernelError(p.op, 5, 'client closed'));
    this.ch.close();
  }

  /**
   * Sends one request (NLM_F_REQUEST and, unless a dump, NLM_F_ACK are added) and resolves with
   * the messages of the answer (empty for a plain ACK). Rejects with a KernelError.
   */
  request(op: string, type: number, flags: number, payload: Uint8Array): Promise<NlMessage[]> {
    if (this.lost) return Promise.reject(kernelError(op, 5, this.lost));
    const dump =
      (flags & NlFlag.DUMP) === NlFlag.DUMP && (type === XfrmMsg.GETSA || type === XfrmMsg.GETPOLICY);
    const seq = this.nextSeq();
    const all = flags | NlFlag.REQUEST | (dump ? 0 : NlFlag.ACK);
    const bytes = encodeNlMessage(type, all, seq, payload);
    return new Promise<NlMessage[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(seq);
        if (p) this.finish(seq, p, kernelError(op, 110, `no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(seq, { op, dump, msgs: [], resolve, reject, timer });
      this.ch.setRef(true);
      this.ch.send(bytes).catch((e: unknown) => {
        const p = this.pending.get(seq);
        if (!p) return;
        const ce = e instanceof ChannelError ? e : new ChannelError(5, 'EIO', String(e));
        this.finish(seq, p, kernelError(op, ce.errno, ce.message));
      });
    });
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? 15_000;
  }

  private nextSeq(): number {
    do this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    while (this.pending.has(this.seq));
    return this.seq;
  }

  private finish(seq: number, p: Pending, err?: KernelError): void {
    this.pending.delete(seq);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.ch.setRef(false);
    if (err) p.reject(err);
    else p.resolve(p.msgs);
  }

  private warn(kind: string, msg: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.opts.onWarning?.(msg);
  }

  private receive(d: Uint8Array): void {
    let msgs: NlMessage[];
    try {
      msgs = decodeNlMessages(d);
    } catch (e) {
      this.stats.malformed++;
      this.warn('malformed', `dropped a malformed XFRM netlink datagram: ${(e as Error).message}`);
      return;
    }
    for (const m of msgs) {
      const p = this.pending.get(m.seq);
      if (!p) {
        this.stats.unsolicited++;
        this.warn('unsolicited', `ignored an unsolicited ${xfrmMsgName(m.type)} (seq ${m.seq})`);
        continue;
      }
      if (m.type === NlMsg.ERROR) {
        let err: number;
        try {
          err = nlError(m);
        } catch (e) {
          this.finish(m.seq, p, kernelError(p.op, 74, (e as Error).message));
          continue;
        }
        this.finish(m.seq, p, err === 0 ? undefined : kernelError(p.op, -err));
      } else if (m.type === NlMsg.DONE) {
        // A dump's end; its payload is an int error (0, or -errno if the dump failed midway).
        const err = m.payload.length >= 4 ? nlError(m) : 0;
        this.finish(m.seq, p, err === 0 ? undefined : kernelError(p.op, -err));
      } else {
        p.msgs.push(m);
      }
    }
  }

  // ---- typed operations -------------------------------------------------------------------------

  /** XFRM_MSG_NEWSA (or UPDSA): add (or update in place) a state. */
  async newSa(info: XfrmUsersaInfo, attrs: NlAttr[], update = false): Promise<void> {
    await this.request(
      update ? 'updateSa' : 'addSa',
      update ? XfrmMsg.UPDSA : XfrmMsg.NEWSA,
      0,
      encodeBody(XfrmUsersaInfo, info, attrs),
    );
  }

  /** XFRM_MSG_GETSA: one state with its attributes (keys included: never log them). */
  async getSa(op: string, id: XfrmUsersaId, attrs: NlAttr[] = []): Promise<SaRecord> {
    const msgs = await this.request(op, XfrmMsg.GETSA, 0, encodeBody(XfrmUsersaId, id, attrs));
    const m = msgs.find((x) => x.type === XfrmMsg.NEWSA);
    if (!m) throw kernelError(op, 74, 'GETSA answered without a state');
    return this.decodeSa(op, m);
  }

  /** XFRM_MSG_GETSA with NLM_F_DUMP: every state of the namespace. */
  async dumpSa(op = 'dumpSa'): Promise<SaRecord[]> {
    const msgs = await this.request(
      op,
      XfrmMsg.GETSA,
      NlFlag.DUMP,
      encodeBody(XfrmUsersaId, XfrmUsersaId.zero()),
    );
    return msgs.filter((m) => m.type === XfrmMsg.NEWSA).map((m) => this.decodeSa(op, m));
  }

  async delSa(op: string, id: XfrmUsersaId, attrs: NlAttr[] = []): Promise<void> {
    await this.request(op, XfrmMsg.DELSA, 0, encodeBody(XfrmUsersaId, id, attrs));
  }

  /** XFRM_MSG_ALLOCSPI: the kernel picks an SPI in [min, max] and creates a larval state. */
  async allocSpi(info: XfrmUserspiInfo): Promise<SaRecord> {
    const msgs = await this.request('allocSpi', XfrmMsg.ALLOCSPI, 0, encodeBody(XfrmUserspiInfoCodec, info));
    const m = msgs.find((x) => x.type === XfrmMsg.NEWSA);
    if (!m) throw kernelError('allocSpi', 74, 'ALLOCSPI answered without a state');
    return this.decodeSa('allocSpi', m);
  }

  /** XFRM_MSG_GETAE: replay state and current lifetime of a state (flags XFRM_AE_RVAL etc.). */
  async getAe(op: string, ae: XfrmAeventId): Promise<NlAttr[]> {
    const msgs = await this.request(op, XfrmMsg.GETAE, 0, encodeBody(XfrmAeventId, ae));
    const m = msgs.find((x) => x.type === XfrmMsg.NEWAE);
    if (!m) throw kernelError(op, 74, 'GETAE answered without an event');
    try {
      return decodeBody(XfrmAeventId, m.payload).attrs;
    } catch (e) {
      throw kernelError(op, 74, (e as Error).message);
    }
  }

  /** XFRM_MSG_NEWPOLICY (exclusive: EEXIST if the selector+direction exists) or UPDPOLICY. */
  async newPolicy(
    op: string,
    info: XfrmUserpolicyInfo,
    tmpls: XfrmUserTmpl[],
    update = false,
  ): Promise<void> {
    const attrs: NlAttr[] = tmpls.length ? [{ type: Xfrma.TMPL, data: concatTmpls(tmpls) }] : [];
    await this.request(
      op,
      update ? XfrmMsg.UPDPOLICY : XfrmMsg.NEWPOLICY,
      0,
      encodeBody(XfrmUserpolicyInfo, info, attrs),
    );
  }

  async getPolicy(op: string, id: XfrmUserpolicyId): Promise<PolicyRecord> {
    const msgs = await this.request(op, XfrmMsg.GETPOLICY, 0, encodeBody(XfrmUserpolicyId, id));
    const m = msgs.find((x) => x.type === XfrmMsg.NEWPOLICY);
    if (!m) throw kernelError(op, 74, 'GETPOLICY answered without a policy');
    return this.decodePolicy(op, m);
  }

  async dumpPolicy(op = 'dumpPolicy'): Promise<PolicyRecord[]> {
    const msgs = await this.request(op, XfrmMsg.GETPOLICY, NlFlag.DUMP, new Uint8Array(0));
    return msgs.filter((m) => m.type === XfrmMsg.NEWPOLICY).map((m) => this.decodePolicy(op, m));
  }

  async delPolicy(op: string, id: XfrmUserpolicyId, attrs: NlAttr[] = []): Promise<void> {
    await this.request(op, XfrmMsg.DELPOLICY, 0, encodeBody(XfrmUserpolicyId, id, attrs));
  }

  /** XFRM_MSG_FLUSHSA: removes EVERY state of a protocol in the namespace (tests only). */
  async flushSaAll(proto: number): Promise<void> {
    await this.request('flushSa', XfrmMsg.FLUSHSA, 0, encodeBody(XfrmUsersaFlush, { proto }));
  }

  /** XFRM_MSG_FLUSHPOLICY: removes EVERY policy in the namespace (tests only). */
  async flushPolicyAll(): Promise<void> {
    await this.request('flushPolicy', XfrmMsg.FLUSHPOLICY, 0, new Uint8Array(0));
  }

  private decodeSa(op: string, m: NlMessage): SaRecord {
    try {
      const { body, attrs } = decodeBody(XfrmUsersaInfo, m.payload);
      return { info: body, attrs };
    } catch (e) {
      throw kernelError(op, 74, (e as Error).message);
    }
  }

  private decodePolicy(op: string, m: NlMessage): PolicyRecord {
    try {
      const { body, attrs } = decodeBody(XfrmUserpolicyInfo, m.payload);
      const t = findAttr(attrs, Xfrma.TMPL);
      return { info: body, tmpls: t ? decodeTmpls(t) : [], attrs };
    } catch (e) {
      throw kernelError(op, 74, (e as Error).message);
    }
  }
}

function concatTmpls(tmpls: XfrmUserTmpl[]): Uint8Array {
  const out = new Uint8Array(tmpls.length * XfrmUserTmplCodec.size);
  for (const [i, t] of tmpls.entries()) out.set(XfrmUserTmplCodec.encode(t), i * XfrmUserTmplCodec.size);
  return out;
}
