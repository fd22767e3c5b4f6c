// The XFRM netlink codec and client against this machine's kernel, in scratch namespaces
// (ikgwx<pid>-*), with iproute2 as the independent judge. This kernel has XFRM netlink but no ESP:
// policies, ALLOCSPI, dumps, errors and ACQUIRE run here; states with keys run in the kernel VM
// (test/kvm/xfrm-e2e.test.ts, and the SA half of test/contract/xfrm-installer.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DecodeError, KernelError } from '../../src/common/errors.js';
import { decodeNlMessages, encodeNlMessage, XfrmClient } from '../../src/esp/xfrm/client.js';
import { createXfrmInstaller, DEFAULT_REQID_RANGE } from '../../src/esp/xfrm/installer.js';
import { decodeEvent } from '../../src/esp/xfrm/listener.js';
import { policyPriority, portMask, rangeToPrefixes, tsToSelectors } from '../../src/esp/xfrm/selectors.js';
import {
  ALL_STRUCTS,
  addrToXfrm,
  decodeAlgoAead,
  decodeAlgoAuth,
  decodeAttrs,
  decodeReplayEsn,
  encodeAlgoAead,
  encodeAlgoAuth,
  encodeAttrs,
  encodeReplayEsn,
  IPPROTO_ESP,
  NlMsg,
  replayEsnFor,
  type StructCodec,
  XFRM_MODE_TUNNEL,
  XfrmMsg,
  XfrmPolicyDir,
  XfrmUserAcquire,
  XfrmUserExpire,
  XfrmUserMapping,
  XfrmUserpolicyInfo,
  XfrmUsersaInfo,
  XfrmUserspiInfo,
  XfrmUserTmpl,
  xfrmToAddr,
} from '../../src/esp/xfrm/structs.js';
import type { DatagramChannel } from '../../src/esp/xfrm/transport.js';
import type { KernelEvent, TsRange } from '../../src/ike/ports.js';
import { LOCAL_TS, REMOTE_TS, samplePolicy, sampleSa } from '../contract/sa-installer.contract.js';
import { ip, ipQuiet, netnsSkipReason, parsePolicies, parseStates, scratchNetns } from '../kvm/xfrm-judge.js';

const skip = netnsSkipReason();
const KREQ = (r: number): number => DEFAULT_REQID_RANGE.base + r;

// sizeof()/offsetof() as gcc computes them for <linux/xfrm.h> of linux-libc-dev 6.1.187 on x86-64
// (a throw-away C program, printf("%zu", sizeof(struct xfrm_usersa_info)) etc.).
const GCC: Record<string, { size: number; offsets?: Record<string, number> }> = {
  xfrm_selector: { size: 56, offsets: { family: 40, ifindex: 48 } },
  xfrm_id: { size: 24 },
  xfrm_lifetime_cfg: { size: 64 },
  xfrm_lifetime_cur: { size: 32 },
  xfrm_replay_state: { size: 12 },
  xfrm_replay_state_esn: { size: 24 },
  xfrm_algo: { size: 68 },
  xfrm_algo_auth: { size: 72 },
  xfrm_algo_aead: { size: 72 },
  xfrm_stats: { size: 12 },
  xfrm_user_tmpl: { size: 64, offsets: { family: 24, saddr: 28, reqid: 44, mode: 48, aalgos: 52 } },
  xfrm_encap_tmpl: { size: 24, offsets: { encap_oa: 8 } },
  xfrm_userpolicy_type: { size: 6 },
  xfrm_mark: { size: 8 },
  xfrm_usersa_info: {
    size: 224,
    offsets: {
      id: 56,
      saddr: 80,
      lft: 96,
      curlft: 160,
      stats: 192,
      seq: 204,
      reqid: 208,
      family: 212,
      flags: 216,
    },
  },
  xfrm_usersa_id: { size: 24, offsets: { family: 20, proto: 22 } },
  xfrm_aevent_id: { size: 48, offsets: { saddr: 24, flags: 40, reqid: 44 } },
  xfrm_userspi_info: { size: 232 },
  xfrm_userpolicy_info: { size: 168, offsets: { priority: 152, dir: 160, share: 163 } },
  xfrm_userpolicy_id: { size: 64 },
  xfrm_user_acquire: { size: 280, offsets: { saddr: 24, sel: 40, policy: 96, aalgos: 264, seq: 276 } },
  xfrm_user_expire: { size: 232, offsets: { hard: 224 } },
  xfrm_user_polexpire: { size: 176 },
  xfrm_user_mapping: {
    size: 64,
    offsets: { reqid: 24, old_saddr: 28, new_saddr: 44, old_sport: 60, new_sport: 62 },
  },
  xfrm_usersa_flush: { size: 1 },
};

describe('XFRM structs (pure)', () => {
  it('layouts match gcc for <linux/xfrm.h>', () => {
    expect(ALL_STRUCTS.map((s) => s.name).sort()).toEqual(Object.keys(GCC).sort());
    for (const s of ALL_STRUCTS) {
      const g = GCC[s.name]!;
      expect(s.size, s.name).toBe(g.size);
      for (const [f, off] of Object.entries(g.offsets ?? {}))
        expect((s.offsets as Record<string, number>)[f], `${s.name}.${f}`).toBe(off);
    }
  });

  it('every struct round-trips, at an offset too', () => {
    for (const s of ALL_STRUCTS as readonly StructCodec<unknown>[]) {
      const zero = s.encode(s.zero());
      expect(zero.length).toBe(s.size);
      const shifted = new Uint8Array(zero.length + 5);
      shifted.set(zero, 5);
      expect(s.encode(s.decode(shifted, 5))).toEqual(zero);
    }
    const info = XfrmUsersaInfo.zero();
    info.id = { daddr: addrToXfrm('2001:db8::1').bytes, spi: 0xc0de0001, proto: IPPROTO_ESP };
    info.reqid = 0x49000007;
    info.lft.hard_byte_limit = 0xffff_ffff_ffff_ffffn;
    info.family = 10;
    info.mode = XFRM_MODE_TUNNEL;
    info.flags = 0xa0;
    const b = XfrmUsersaInfo.encode(info);
    // __be32 spi at id+16, host-order reqid at 208
    expect([...b.subarray(56 + 16, 56 + 20)]).toEqual([0xc0, 0xde, 0x00, 0x01]);
    expect(new DataView(b.buffer).getUint32(208, true)).toBe(0x49000007);
    expect(XfrmUsersaInfo.decode(b)).toEqual(info);
    expect(xfrmToAddr(10, XfrmUsersaInfo.decode(b).id.daddr)).toBe('2001:db8::1');
  });

  it('algorithm and replay attributes round-trip', () => {
    const key = new Uint8Array(20).map((_, i) => i);
    expect(decodeAlgoAead(encodeAlgoAead({ name: 'rfc4106(gcm(aes))', key, icvBits: 128 }))).toEqual({
      name: 'rfc4106(gcm(aes))',
      key,
      icvBits: 128,
    });
    const ik = new Uint8Array(32).fill(7);
    expect(decodeAlgoAuth(encodeAlgoAuth({ name: 'hmac(sha256)', key: ik, truncBits: 128 }))).toEqual({
      name: 'hmac(sha256)',
      key: ik,
      truncBits: 128,
    });
    const r = replayEsnFor(100);
    expect(r.bmp.length).toBe(4);
    expect(decodeReplayEsn(encodeReplayEsn(r))).toEqual(r);
    const attrs = [
      { type: 18, data: new Uint8Array([1, 2, 3]) },
      { type: 4, data: new Uint8Array(0) },
    ];
    expect(decodeAttrs(encodeAttrs(attrs))).toEqual(attrs);
  });

  it('malformed input throws DecodeError, never anything else', () => {
    expect(() => XfrmUsersaInfo.decode(new Uint8Array(100))).toThrow(DecodeError);
    const bad = encodeAttrs([{ type: 5, data: new Uint8Array(8) }]);
    new DataView(bad.buffer).setUint16(0, 200, true);
    expect(() => decodeAttrs(bad)).toThrow(DecodeError);
    expect(() =>
      decodeAlgoAead(encodeAlgoAead({ name: 'x', key: new Uint8Array(4), icvBits: 0 }).subarray(0, 74)),
    ).toThrow(DecodeError);
    const esn = encodeReplayEsn(replayEsnFor(64));
    new DataView(esn.buffer).setUint32(0, 1000, true);
    expect(() => decodeReplayEsn(esn)).toThrow(DecodeError);
    const msg = encodeNlMessage(XfrmMsg.NEWSA, 0, 1, new Uint8Array(8));
    new DataView(msg.buffer).setUint32(0, 99, true);
    expect(() => decodeNlMessages(msg)).toThrow(DecodeError);
    // A fuzz loop over truncations and flipped bytes of a real ACQUIRE.
    const acq = acquireMessage(KREQ(3));
    for (let cut = 0; cut < acq.length; cut += 7) {
      try {
        const ms = decodeNlMessages(acq.subarray(0, cut));
        for (const m of ms) decodeEvent(m, DEFAULT_REQID_RANGE);
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
      }
    }
  });

  it('selectors: ranges split into exact prefixes, ports to port/mask, ICMP type/code', () => {
    expect(rangeToPrefixes('10.0.0.1', '10.0.0.6', 4)).toEqual([
      { addr: '10.0.0.1', len: 32 },
      { addr: '10.0.0.2', len: 31 },
      { addr: '10.0.0.4', len: 31 },
      { addr: '10.0.0.6', len: 32 },
    ]);
    expect(rangeToPrefixes('0.0.0.0', '255.255.255.255', 4)).toEqual([{ addr: '0.0.0.0', len: 0 }]);
    expect(rangeToPrefixes('2001:db8::', '2001:db8::ffff:ffff:ffff:ffff', 6)).toEqual([
      { addr: '2001:db8::', len: 64 },
    ]);
    expect(portMask(443, 443)).toEqual({ port: 443, mask: 0xffff });
    expect(portMask(0, 65535)).toEqual({ port: 0, mask: 0 });
    expect(portMask(1024, 2047)).toEqual({ port: 1024, mask: 0xfc00 });
    const icmp = tsToSelectors(
      { ...LOCAL_TS, protocol: 1, startPort: 0x0800, endPort: 0x0800 },
      { ...REMOTE_TS, protocol: 1, startPort: 0, endPort: 65535 },
    )[0]!;
    expect([icmp.sport, icmp.sport_mask, icmp.dport, icmp.dport_mask]).toEqual([8, 0xffff, 0, 0]);
    // strongSwan 5.9 get_priority: 400000 - (16+24)*512 - 0 - 0 - 1 for a regular policy
    expect(policyPriority(tsToSelectors(LOCAL_TS, REMOTE_TS)[0]!, false)).toBe(379_519);
    expect(policyPriority(tsToSelectors(LOCAL_TS, REMOTE_TS)[0]!, true)).toBe(379_520);
    expect(() =>
      tsToSelectors(LOCAL_TS, { ...REMOTE_TS, family: 6, startAddr: '::', endAddr: '::1' }),
    ).toThrow();
  });

  it('listener: decodes ACQUIRE/EXPIRE/MAPPING, ignores foreign reqids, survives garbage', async () => {
    expect(decodeEvent(decodeNlMessages(acquireMessage(KREQ(3)))[0]!, DEFAULT_REQID_RANGE)).toEqual({
      kind: 'acquire',
      reqid: 3,
      src: '10.10.1.10',
      dst: '192.168.100.10',
    });
    expect(decodeEvent(decodeNlMessages(acquireMessage(5))[0]!, DEFAULT_REQID_RANGE)).toBeUndefined();
    const exp = XfrmUserExpire.zero();
    exp.state.id = { daddr: addrToXfrm('192.0.2.1').bytes, spi: 0xc0de0001, proto: IPPROTO_ESP };
    exp.state.family = 2;
    exp.state.reqid = KREQ(1);
    exp.hard = 1;
    expect(
      decodeEvent(
        decodeNlMessages(encodeNlMessage(XfrmMsg.EXPIRE, 0, 0, XfrmUserExpire.encode(exp)))[0]!,
        DEFAULT_REQID_RANGE,
      ),
    ).toEqual({ kind: 'expire', spi: 0xc0de0001, dst: '192.0.2.1', hard: true });
    const map = XfrmUserMapping.zero();
    map.id = { daddr: addrToXfrm('172.30.0.2').bytes, spi: 0xc0de0002, family: 2, proto: IPPROTO_ESP };
    map.reqid = KREQ(1);
    map.new_saddr = addrToXfrm('198.51.100.7').bytes;
    map.new_sport = 31337;
    expect(
      decodeEvent(
        decodeNlMessages(encodeNlMessage(XfrmMsg.MAPPING, 0, 0, XfrmUserMapping.encode(map)))[0]!,
        DEFAULT_REQID_RANGE,
      ),
    ).toEqual({
      kind: 'mapping',
      spi: 0xc0de0002,
      dst: '172.30.0.2',
      newRemote: { address: '198.51.100.7', port: 31337 },
    });
  });

  it('client: malformed or missing replies become KernelErrors, nothing throws out of the socket', async () => {
    const fake = new FakeChannel();
    const warnings: string[] = [];
    const c = new XfrmClient(fake, { timeoutMs: 200, onWarning: (w) => warnings.push(w) });
    // 1) garbage datagram: dropped and counted; the request times out with ETIMEDOUT
    fake.reply = () => [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])];
    const e1 = await c
      .delSa('delSa', { daddr: new Uint8Array(16), spi: 1, family: 2, proto: 50 })
      .catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(KernelError);
    expect((e1 as KernelError).errnoName).toBe('ETIMEDOUT');
    expect(c.stats.malformed).toBe(1);
    // 2) a GETSA answered by a truncated NEWSA then an ACK: EBADMSG
    fake.reply = (seq) => [encodeNlMessage(XfrmMsg.NEWSA, 0, seq, new Uint8Array(40)), ack(seq, 0)];
    const e2 = await c
      .getSa('querySa', { daddr: new Uint8Array(16), spi: 1, family: 2, proto: 50 })
      .catch((e: unknown) => e);
    expect((e2 as KernelError).errnoName).toBe('EBADMSG');
    expect((e2 as KernelError).op).toBe('querySa');
    // 3) errno and op are kept; unsolicited messages are ignored
    fake.reply = (seq) => [ack(seq + 1000, -1), ack(seq, -17)];
    const e3 = await c.newPolicy('addPolicy', XfrmUserpolicyInfo.zero(), []).catch((e: unknown) => e);
    expect(e3).toMatchObject({ op: 'addPolicy', errno: 17, errnoName: 'EEXIST', code: 'ERR_KERNEL' });
    expect(c.stats.unsolicited).toBe(1);
    // 4) a channel that fails to send
    fake.reply = () => {
      throw Object.assign(new Error('sendmsg: ENOBUFS'), { errno: 105, code: 'ENOBUFS' });
    };
    const e4 = await c.flushPolicyAll().catch((e: unknown) => e);
    expect(e4).toBeInstanceOf(KernelError);
    expect(warnings.length).toBeGreaterThan(0);
    c.close();
  });
});

describe.skipIf(skip !== '')(`XFRM netlink against this kernel${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let nsName = '';
  let nsPath = '';
  let client: XfrmClient;

  beforeAll(async () => {
    ({ name: nsName, path: nsPath } = scratchNetns('codec'));
    client = await XfrmClient.open({ netns: { kind: 'netns', path: nsPath } });
  });
  afterAll(() => {
    client?.close();
    ipQuiet('netns', 'del', nsName);
  });
  afterEach(() => {
    ipQuiet('-n', nsName, 'xfrm', 'policy', 'flush');
    ipQuiet('-n', nsName, 'xfrm', 'state', 'flush');
  });

  function tmpl(src: string, dst: string, reqid: number): ReturnType<typeof XfrmUserTmpl.zero> {
    const t = XfrmUserTmpl.zero();
    t.id = { daddr: addrToXfrm(dst).bytes, spi: 0, proto: IPPROTO_ESP };
    t.family = addrToXfrm(dst).family;
    t.saddr = addrToXfrm(src).bytes;
    t.reqid = reqid;
    t.mode = XFRM_MODE_TUNNEL;
    t.aalgos = t.ealgos = t.calgos = 0xffffffff;
    return t;
  }

  function policy(src: TsRange, dst: TsRange, dir: 'in' | 'out' | 'fwd', priority: number) {
    const info = XfrmUserpolicyInfo.zero();
    info.sel = tsToSelectors(src, dst)[0]!;
    info.dir = XfrmPolicyDir[dir];
    info.priority = priority;
    info.lft.soft_byte_limit = info.lft.hard_byte_limit = 0xffff_ffff_ffff_ffffn;
    info.lft.soft_packet_limit = info.lft.hard_packet_limit = 0xffff_ffff_ffff_ffffn;
    return info;
  }

  it('NEWPOLICY: ip xfrm policy shows exactly what was encoded (v4 with ports, v6, ICMP)', async () => {
    const tcp443: TsRange = {
      ...REMOTE_TS,
      protocol: 6,
      startPort: 443,
      endPort: 443,
      startAddr: '192.168.1.5',
      endAddr: '192.168.1.5',
    };
    await client.newPolicy('addPolicy', policy(LOCAL_TS, tcp443, 'out', 1234), [
      tmpl('192.0.2.1', '192.0.2.2', 7),
    ]);
    const v6a: TsRange = {
      family: 6,
      protocol: 0,
      startPort: 0,
      endPort: 65535,
      startAddr: '2001:db8:a::',
      endAddr: '2001:db8:a::ffff:ffff:ffff:ffff',
    };
    const v6b: TsRange = { ...v6a, startAddr: '2001:db8:b::', endAddr: '2001:db8:b::ffff:ffff:ffff:ffff' };
    await client.newPolicy('addPolicy', policy(v6a, v6b, 'fwd', 7), [tmpl('2001:db8::1', '2001:db8::2', 8)]);
    const echo: TsRange = { ...REMOTE_TS, protocol: 1, startPort: 0x0800, endPort: 0x0800 };
    await client.newPolicy('addPolicy', policy(echo, LOCAL_TS, 'in', 9), [tmpl('192.0.2.2', '192.0.2.1', 7)]);
    const seen = parsePolicies(ip('-n', nsName, 'xfrm', 'policy'));
    const by = (dir: string) => seen.find((p) => p.dir === dir);
    expect(by('out')).toEqual({
      src: '10.10.0.0/16',
      dst: '192.168.1.5/32',
      upper: 'proto tcp dport 443',
      dir: 'out',
      priority: 1234,
      tmpl: { src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', reqid: 7, mode: 'tunnel' },
    });
    expect(by('fwd')).toMatchObject({
      src: '2001:db8:a::/64',
      dst: '2001:db8:b::/64',
      priority: 7,
      tmpl: { src: '2001:db8::1', dst: '2001:db8::2', reqid: 8 },
    });
    // ICMP type in sport, code in dport; code 0 means "any code" (strongSwan ts2selector)
    expect(by('in')).toMatchObject({
      src: '192.168.100.0/24',
      dst: '10.10.0.0/16',
      upper: 'proto icmp type 8',
    });
  });

  it('policies read back through GETPOLICY and the dump equal what was sent', async () => {
    const info = policy(LOCAL_TS, REMOTE_TS, 'out', 4242);
    const t = tmpl('192.0.2.1', '192.0.2.2', KREQ(1));
    await client.newPolicy('addPolicy', info, [t]);
    const got = await client.getPolicy('getPolicy', { sel: info.sel, index: 0, dir: info.dir });
    expect(got.info.sel).toEqual(info.sel);
    expect(got.info.priority).toBe(4242);
    expect(got.tmpls).toEqual([t]);
    const dump = await client.dumpPolicy();
    expect(dump).toHaveLength(1);
    expect(dump[0]!.tmpls[0]!.reqid).toBe(KREQ(1));
    // and `ip xfrm policy add` output decodes to the same struct shape
    ip(
      '-n',
      nsName,
      'xfrm',
      'policy',
      'add',
      'src',
      '10.10.0.0/16',
      'dst',
      '192.168.100.0/24',
      'dir',
      'fwd',
      'priority',
      '11',
      'tmpl',
      'src',
      '192.0.2.2',
      'dst',
      '192.0.2.1',
      'proto',
      'esp',
      'reqid',
      '3',
      'mode',
      'tunnel',
    );
    const fromIp = (await client.dumpPolicy()).find((p) => p.info.dir === XfrmPolicyDir.fwd)!;
    expect(fromIp.info.sel).toMatchObject({ family: 2, prefixlen_s: 16, prefixlen_d: 24 });
    expect(xfrmToAddr(2, fromIp.info.sel.saddr)).toBe('10.10.0.0');
    expect(fromIp.tmpls[0]).toMatchObject({ reqid: 3, mode: XFRM_MODE_TUNNEL, family: 2 });
    expect(xfrmToAddr(2, fromIp.tmpls[0]!.saddr)).toBe('192.0.2.2');
  });

  it('ALLOCSPI: the kernel picks an SPI in range; ip xfrm state and GETSA/dump agree', async () => {
    const info = XfrmUserspiInfo.zero();
    info.info.id = { daddr: addrToXfrm('192.0.2.1').bytes, spi: 0, proto: IPPROTO_ESP };
    info.info.saddr = addrToXfrm('192.0.2.2').bytes;
    info.info.family = 2;
    info.info.mode = XFRM_MODE_TUNNEL;
    info.info.reqid = KREQ(2);
    info.min = 0xc0000000;
    info.max = 0xc00000ff;
    const got = await client.allocSpi(info);
    expect(got.info.id.spi).toBeGreaterThanOrEqual(0xc0000000);
    expect(got.info.id.spi).toBeLessThanOrEqual(0xc00000ff);
    const states = parseStates(ip('-n', nsName, 'xfrm', 'state'));
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({
      src: '192.0.2.2',
      dst: '192.0.2.1',
      spi: got.info.id.spi,
      reqid: KREQ(2),
      mode: 'tunnel',
    });
    const q = await client.getSa('querySa', {
      daddr: got.info.id.daddr,
      spi: got.info.id.spi,
      family: 2,
      proto: IPPROTO_ESP,
    });
    expect(q.info.reqid).toBe(KREQ(2));
    expect((await client.dumpSa()).map((s) => s.info.id.spi)).toEqual([got.info.id.spi]);
  });

  it('kernel errors keep errno and op: EEXIST, ENOENT, ESRCH', async () => {
    const info = policy(LOCAL_TS, REMOTE_TS, 'out', 1);
    await client.newPolicy('addPolicy', info, [tmpl('192.0.2.1', '192.0.2.2', 1)]);
    await expect(
      client.newPolicy('addPolicy', info, [tmpl('192.0.2.1', '192.0.2.2', 1)]),
    ).rejects.toMatchObject({
      op: 'addPolicy',
      errno: 17,
      errnoName: 'EEXIST',
    });
    const id = { sel: info.sel, index: 0, dir: XfrmPolicyDir.in };
    await expect(client.delPolicy('delPolicy', id)).rejects.toMatchObject({
      op: 'delPolicy',
      errno: 2,
      errnoName: 'ENOENT',
    });
    const said = { daddr: addrToXfrm('192.0.2.1').bytes, spi: 0x1234, family: 2, proto: IPPROTO_ESP };
    await expect(client.delSa('delSa', said)).rejects.toMatchObject({
      op: 'delSa',
      errno: 3,
      errnoName: 'ESRCH',
    });
    await expect(client.getSa('querySa', said)).rejects.toBeInstanceOf(KernelError);
  });

  it('installer: refcounts, trap below regular, range split, and ip xfrm policy agrees at each step', async () => {
    const inst = await createXfrmInstaller({ netns: { kind: 'netns', path: nsPath }, listen: false });
    try {
      const view = () => parsePolicies(ip('-n', nsName, 'xfrm', 'policy'));
      const trap = samplePolicy({ trap: true, reqid: 4 });
      const reg = samplePolicy({ reqid: 4 });
      await inst.addPolicy(trap);
      expect(view()).toEqual([
        expect.objectContaining({
          dir: 'out',
          priority: 379_520,
          tmpl: expect.objectContaining({ reqid: KREQ(4) }),
        }),
      ]);
      await inst.addPolicy(reg); // the CHILD_SA's policy over the trap: one kernel policy, now regular
      await inst.addPolicy(reg); // a rekeyed CHILD_SA
      expect(view()).toEqual([expect.objectContaining({ priority: 379_519 })]);
      expect(inst.policyRefs()).toEqual([expect.objectContaining({ refs: 3, trap: false })]);
      await inst.delPolicy(reg);
      await inst.delPolicy(reg);
      expect(view()).toEqual([expect.objectContaining({ priority: 379_520 })]); // back to the trap
      await inst.delPolicy(trap);
      expect(view()).toEqual([]);
      // 10.10.0.1-10.10.0.6 is four prefixes: four kernel policies, removed together
      const odd = samplePolicy({ src: { ...LOCAL_TS, startAddr: '10.10.0.1', endAddr: '10.10.0.6' } });
      await inst.addPolicy(odd);
      expect(
        view()
          .map((p) => p.src)
          .sort(),
      ).toEqual(['10.10.0.1/32', '10.10.0.2/31', '10.10.0.4/31', '10.10.0.6/32']);
      await inst.delPolicy(odd);
      expect(view()).toEqual([]);
      // a policy someone else installed is reported, not overwritten
      ip(
        '-n',
        nsName,
        'xfrm',
        'policy',
        'add',
        'src',
        '10.10.0.0/16',
        'dst',
        '192.168.100.0/24',
        'dir',
        'out',
        'tmpl',
        'src',
        '192.0.2.1',
        'dst',
        '192.0.2.9',
        'proto',
        'esp',
        'reqid',
        '5',
        'mode',
        'tunnel',
      );
      await expect(inst.addPolicy(reg)).rejects.toMatchObject({ errno: 17, op: 'addPolicy' });
      expect(view()).toEqual([
        expect.objectContaining({ tmpl: expect.objectContaining({ dst: '192.0.2.9', reqid: 5 }) }),
      ]);
      // invalid requests never reach the kernel
      await expect(inst.addPolicy(samplePolicy({ reqid: DEFAULT_REQID_RANGE.span }))).rejects.toMatchObject({
        errno: 22,
      });
      await expect(inst.addSa(sampleSa({ encKey: new Uint8Array(3) }))).rejects.toMatchObject({
        errno: 22,
        op: 'addSa',
      });
    } finally {
      inst.close();
    }
  });

  it("flush removes exactly ikegw's objects; a new installer cleans a crashed one's leftovers", async () => {
    const crashed = await createXfrmInstaller({ netns: { kind: 'netns', path: nsPath }, listen: false });
    const inP = samplePolicy({
      direction: 'in',
      src: REMOTE_TS,
      dst: LOCAL_TS,
      tunnelSrc: '192.0.2.2',
      tunnelDst: '192.0.2.1',
    });
    await crashed.addPolicy(samplePolicy());
    await crashed.addPolicy(inP);
    await crashed.addPolicy({ ...inP, direction: 'fwd' });
    const s = XfrmUserspiInfo.zero(); // a larval state in our range, and a foreign one
    s.info.id = { daddr: addrToXfrm('192.0.2.1').bytes, spi: 0, proto: IPPROTO_ESP };
    s.info.saddr = addrToXfrm('192.0.2.2').bytes;
    s.info.family = 2;
    s.info.mode = XFRM_MODE_TUNNEL;
    s.info.reqid = KREQ(1);
    s.min = 0xd0000000;
    s.max = 0xdfffffff;
    await client.allocSpi(s);
    await client.allocSpi({ ...s, info: { ...s.info, reqid: 5 } });
    ip(
      '-n',
      nsName,
      'xfrm',
      'policy',
      'add',
      'src',
      '10.20.0.0/16',
      'dst',
      '192.168.100.0/24',
      'dir',
      'out',
      'tmpl',
      'src',
      '192.0.2.1',
      'dst',
      '192.0.2.2',
      'proto',
      'esp',
      'reqid',
      '5',
      'mode',
      'tunnel',
    );
    crashed.close(); // no flush: what a SIGKILL leaves behind
    expect(parsePolicies(ip('-n', nsName, 'xfrm', 'policy'))).toHaveLength(4);
    const fresh = await createXfrmInstaller({ netns: { kind: 'netns', path: nsPath }, listen: false });
    try {
      expect(parsePolicies(ip('-n', nsName, 'xfrm', 'policy'))).toEqual([
        expect.objectContaining({ src: '10.20.0.0/16', tmpl: expect.objectContaining({ reqid: 5 }) }),
      ]);
      expect(parseStates(ip('-n', nsName, 'xfrm', 'state')).map((x) => x.reqid)).toEqual([5]);
      await fresh.addPolicy(samplePolicy());
      await fresh.flush();
      await fresh.flush();
      expect(parsePolicies(ip('-n', nsName, 'xfrm', 'policy'))).toHaveLength(1);
    } finally {
      fresh.close();
    }
  });

  it('trap policy + traffic -> ACQUIRE with our reqid; a foreign trap is not reported', async () => {
    // a veth pair inside the namespace, so the packet has a route and hits the policy
    ip('-n', nsName, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ip('-n', nsName, 'link', 'set', 'v0', 'up');
    ip('-n', nsName, 'link', 'set', 'v1', 'up');
    ip('-n', nsName, 'addr', 'add', '10.10.1.10/32', 'dev', 'v0');
    ip('-n', nsName, 'addr', 'add', '10.20.1.10/32', 'dev', 'v0');
    ip('-n', nsName, 'route', 'add', '192.168.100.0/24', 'dev', 'v0');
    const inst = await createXfrmInstaller({ netns: { kind: 'netns', path: nsPath } });
    const events: KernelEvent[] = [];
    inst.setListener((e) => events.push(e));
    try {
      await inst.addPolicy(samplePolicy({ trap: true, reqid: 9 }));
      ip(
        '-n',
        nsName,
        'xfrm',
        'policy',
        'add',
        'src',
        '10.20.0.0/16',
        'dst',
        '192.168.100.0/24',
        'dir',
        'out',
        'tmpl',
        'src',
        '192.0.2.1',
        'dst',
        '192.0.2.2',
        'proto',
        'esp',
        'reqid',
        '5',
        'mode',
        'tunnel',
      );
      ipQuiet('netns', 'exec', nsName, 'ping', '-c', '1', '-W', '1', '-I', '10.20.1.10', '192.168.100.10');
      ipQuiet('netns', 'exec', nsName, 'ping', '-c', '1', '-W', '1', '-I', '10.10.1.10', '192.168.100.10');
      const end = Date.now() + 5000;
      while (events.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(events).toEqual([{ kind: 'acquire', reqid: 9, src: '10.10.1.10', dst: '192.168.100.10' }]);
    } finally {
      await inst.flush();
      inst.close();
      ipQuiet('-n', nsName, 'link', 'del', 'v0');
    }
  });
});

// ---- helpers ----------------------------------------------------------------------------------------

function acquireMessage(reqid: number): Uint8Array {
  const a = XfrmUserAcquire.zero();
  a.id = { daddr: addrToXfrm('198.51.100.1').bytes, spi: 0, proto: IPPROTO_ESP };
  a.saddr = addrToXfrm('198.51.100.2').bytes;
  a.sel = { ...tsToSelectors(LOCAL_TS, REMOTE_TS)[0]! };
  a.sel.saddr = addrToXfrm('10.10.1.10').bytes;
  a.sel.daddr = addrToXfrm('192.168.100.10').bytes;
  a.sel.prefixlen_s = 32;
  a.sel.prefixlen_d = 32;
  a.policy.sel = tsToSelectors(LOCAL_TS, REMOTE_TS)[0]!;
  const t = XfrmUserTmpl.zero();
  t.id.proto = IPPROTO_ESP;
  t.reqid = reqid;
  t.family = 2;
  t.mode = XFRM_MODE_TUNNEL;
  const body = XfrmUserAcquire.encode(a);
  return encodeNlMessage(
    XfrmMsg.ACQUIRE,
    0,
    0,
    new Uint8Array([...body, ...encodeAttrs([{ type: 5, data: XfrmUserTmpl.encode(t) }])]),
  );
}

function ack(seq: number, errno: number): Uint8Array {
  const p = new Uint8Array(4 + 16);
  new DataView(p.buffer).setInt32(0, errno, true);
  return encodeNlMessage(NlMsg.ERROR, 0, seq, p);
}

/** A DatagramChannel whose "kernel" answers with whatever `reply(seq)` returns. */
class FakeChannel implements DatagramChannel {
  readonly label = 'fake';
  reply: (seq: number) => Uint8Array[] = () => [];
  private cb: ((d: Uint8Array) => void) | undefined;
  async send(d: Uint8Array): Promise<void> {
    const seq = new DataView(d.buffer, d.byteOffset).getUint32(8, true);
    const answers = this.reply(seq);
    setTimeout(() => {
      for (const a of answers) this.cb?.(a);
    }, 1);
  }
  onDatagram(cb: (d: Uint8Array) => void): void {
    this.cb = cb;
  }
  async join(): Promise<void> {}
  onLost(): void {}
  setRef(): void {}
  close(): void {}
}
