// The independent judge for XFRM tests: iproute2's `ip xfrm policy` / `ip -s xfrm state` output
// (this iproute2 has no JSON for xfrm), parsed into small records; plus scratch namespaces for the
// native tests. Shared by test/netns/xfrm-*.test.ts, test/contract/xfrm-installer.test.ts and
// test/kvm/xfrm-e2e.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface IpPolicy {
  src: string;
  dst: string;
  /** "proto tcp sport 1024 dport 443" etc., as printed after the addresses. */
  upper: string;
  dir: string;
  priority: number;
  tmpl?: { src: string; dst: string; proto: string; reqid: number; mode: string };
}

/** Parses `ip xfrm policy` text. */
export function parsePolicies(text: string): IpPolicy[] {
  const out: IpPolicy[] = [];
  let cur: IpPolicy | undefined;
  let tmplAddr: { src: string; dst: string } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!raw.startsWith('\t') && line.startsWith('src ')) {
      const m = /^src (\S+) dst (\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      cur = { src: m[1]!, dst: m[2]!, upper: (m[3] ?? '').trim(), dir: '', priority: -1 };
      out.push(cur);
      tmplAddr = undefined;
      continue;
    }
    if (!cur) continue;
    let m = /^dir (\S+) priority (\d+)/.exec(line);
    if (m) {
      cur.dir = m[1]!;
      cur.priority = Number(m[2]);
      continue;
    }
    m = /^tmpl src (\S+) dst (\S+)/.exec(line);
    if (m) {
      tmplAddr = { src: m[1]!, dst: m[2]! };
      continue;
    }
    m = /^proto (\S+) reqid (\d+) mode (\S+)/.exec(line);
    if (m && tmplAddr) cur.tmpl = { ...tmplAddr, proto: m[1]!, reqid: Number(m[2]), mode: m[3]! };
  }
  return out;
}

export interface IpState {
  src: string;
  dst: string;
  spi: number;
  reqid: number;
  mode: string;
  replayWindow: number;
  flags: string[];
  aead?: { name: string; keyHex: string; icvBits: number };
  enc?: { name: string; keyHex: string };
  auth?: { name: string; keyHex: string; truncBits: number };
  encap?: { type: string; sport: number; dport: number };
  /** From `ip -s xfrm state` ("lifetime current"). */
  bytes?: bigint;
  packets?: bigint;
  /** Whole block, for messages. */
  text: string;
}

/** Parses `ip [-s] xfrm state` text. */
export function parseStates(text: string): IpState[] {
  const out: IpState[] = [];
  let cur: IpState | undefined;
  let inCurrent = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!raw.startsWith('\t') && line.startsWith('src ')) {
      const m = /^src (\S+) dst (\S+)/.exec(line);
      if (!m) continue;
      cur = { src: m[1]!, dst: m[2]!, spi: 0, reqid: 0, mode: '', replayWindow: 0, flags: [], text: '' };
      out.push(cur);
      inCurrent = false;
    }
    if (!cur) continue;
    cur.text += `${raw}\n`;
    let m = /^proto esp spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)(?:\(0x[0-9a-f]+\))? mode (\S+)/.exec(line);
    if (m) {
      cur.spi = Number(m[1]);
      cur.reqid = Number(m[2]);
      cur.mode = m[3]!;
      continue;
    }
    m = /^replay-window (\d+)(?: seq 0x[0-9a-f]+)?(?: flag (.*))?$/.exec(line);
    if (m) {
      cur.replayWindow = Number(m[1]);
      cur.flags = (m[2] ?? '').split(/\s+/).filter((x) => x !== '' && !x.startsWith('('));
      continue;
    }
    m = /^aead (\S+) 0x([0-9a-f]+)(?: \(\d+ bits\))? (\d+)/.exec(line);
    if (m) {
      cur.aead = { name: m[1]!, keyHex: m[2]!, icvBits: Number(m[3]) };
      continue;
    }
    m = /^enc (\S+) 0x([0-9a-f]*)/.exec(line);
    if (m) {
      cur.enc = { name: m[1]!, keyHex: m[2]! };
      continue;
    }
    m = /^auth-trunc (\S+) 0x([0-9a-f]+)(?: \(\d+ bits\))? (\d+)/.exec(line);
    if (m) {
      cur.auth = { name: m[1]!, keyHex: m[2]!, truncBits: Number(m[3]) };
      continue;
    }
    m = /^encap type (\S+) sport (\d+) dport (\d+)/.exec(line);
    if (m) {
      cur.encap = { type: m[1]!, sport: Number(m[2]), dport: Number(m[3]) };
      continue;
    }
    if (line.startsWith('lifetime current:')) {
      inCurrent = true;
      continue;
    }
    if (inCurrent) {
      m = /^(\d+)\(bytes\), (\d+)\(packets\)/.exec(line);
      if (m) {
        cur.bytes = BigInt(m[1]!);
        cur.packets = BigInt(m[2]!);
        inCurrent = false;
      }
    }
  }
  return out;
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function ipQuiet(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // cleanup of something already gone
  }
}

/** Why XFRM tests in scratch namespaces cannot run here ('' = they can). */
export function netnsSkipReason(): string {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (creates network namespaces)';
  if (!['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].some(existsSync)) return 'needs iproute2 (ip)';
  try {
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs util-linux (nsenter)';
  }
  return '';
}

let nsCounter = 0;

/** A fresh named namespace `ikgwx<pid%10000>-<tag><n>`; remove it with ipQuiet('netns','del',name). */
export function scratchNetns(tag: string): { name: string; path: string } {
  const name = `ikgwx${process.pid % 10000}-${tag}${nsCounter++}`;
  ipQuiet('netns', 'del', name);
  ip('netns', 'add', name);
  ip('-n', name, 'link', 'set', 'lo', 'up');
  return { name, path: `/run/netns/${name}` };
}
