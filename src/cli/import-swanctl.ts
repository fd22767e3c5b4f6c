// `ikegw import-swanctl <swanctl.conf>`: converts the site-to-site subset of a strongSwan
// swanctl.conf into ikegw's YAML configuration, so users of the strongSwan chart can migrate.
//
// 1. A parser for strongSwan's settings syntax (the one of strongswan.conf and swanctl.conf, from
//    src/libstrongswan/settings/settings_lexer.l and settings_parser.y): `name { ... }` sections,
//    `key = value` settings whose value runs to the end of the line (or a `#` or `}`), quoted
//    strings with escapes, `#` comments, `include <glob>`, sections of the same name merged and the
//    last of duplicate keys winning — as charon does.
// 2. A converter: connections, children, PSK secrets, certificates (auth = pubkey: local.certs
//    with the intermediates and the matching key from the swanctl directory, remote.cacerts —
//    import-swanctl-certs.ts), proposals, start/close/dpd actions, lifetimes.
//    Whatever ikegw cannot express (EAP/XAUTH, IKEv1, transport mode, virtual IPs, marks, raw
//    public keys, ...) is an error naming the file, line and setting — nothing is written then.
//    Settings ikegw does not need (updown scripts, mobike, ...) become warnings.
// 3. The result is run through ikegw's own config loader before it is written.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../daemon/config.js';
import { findKey, intermediates, readCert, SwanctlCreds } from './import-swanctl-certs.js';

// ---- parser ----------------------------------------------------------------------------------------

export interface ConfSetting {
  key: string;
  /** undefined for `key =` (empty). */
  value: string | undefined;
  file: string;
  line: number;
}

export interface ConfSection {
  name: string;
  file: string;
  line: number;
  settings: ConfSetting[];
  sections: ConfSection[];
}

export class SwanctlParseError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'SwanctlParseError';
  }
}

type Tok =
  | { t: 'name'; v: string; line: number }
  | { t: 'value'; v: string | undefined; line: number }
  | { t: '{' | '}' | 'nl'; line: number }
  | { t: 'include'; v: string; line: number };

function lex(text: string, file: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  const err = (m: string): never => {
    throw new SwanctlParseError(file, line, m);
  };
  const quoted = (): string => {
    // at the opening quote
    i++;
    let s = '';
    for (;;) {
      if (i >= n) err('unterminated string');
      const c = text[i]!;
      if (c === '"') {
        i++;
        return s;
      }
      if (c === '\\') {
        const d = text[i + 1];
        if (d === undefined) err('unterminated string');
        if (d === 'n') s += '\n';
        else if (d === 't') s += '\t';
        else if (d === 'r') s += '\r';
        else if (d === '\n') line++;
        else if (d === '\r' && text[i + 2] === '\n') {
          line++;
          i++;
        } else s += d;
        i += 2;
        continue;
      }
      if (c === '\n') line++;
      if (c !== '\r') s += c;
      i++;
    }
  };
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '\n') {
      out.push({ t: 'nl', line });
      line++;
      i++;
    } else if (c === '{' || c === '}') {
      out.push({ t: c, line });
      i++;
    } else if (c === '"') {
      err('unexpected string (a quoted string is only allowed as a value)');
    } else if (c === '=') {
      // value: NAME/STRING parts joined by one space, up to a newline, '#' or '}'
      i++;
      const parts: string[] = [];
      const at = line;
      for (;;) {
        while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
        if (i >= n) break;
        const d = text[i]!;
        if (d === '\n' || d === '#' || d === '}') break;
        if (d === '"') {
          parts.push(quoted());
          continue;
        }
        let j = i;
        while (j < n && !'#}"\r\n\t '.includes(text[j]!)) j++;
        parts.push(text.slice(i, j));
        i = j;
      }
      out.push({ t: 'value', v: parts.length ? parts.join(' ') : undefined, line: at });
    } else {
      let j = i;
      while (j < n && !'#{}="\r\n\t '.includes(text[j]!)) j++;
      const word = text.slice(i, j);
      // "include" followed by blanks and not by '='
      if (word === 'include' && /^[\t ]+[^=\s]/.test(text.slice(j))) {
        i = j;
        while (text[i] === ' ' || text[i] === '\t') i++;
        let pat = '';
        if (text[i] === '"') pat = quoted();
        else {
          while (i < n && !'#}\r\n\t '.includes(text[i]!)) {
            if (text[i] === '\\' && i + 1 < n) {
              pat += text[i + 1];
              i += 2;
            } else pat += text[i++];
          }
        }
        out.push({ t: 'include', v: pat, line });
        continue;
      }
      out.push({ t: 'name', v: word, line });
      i = j;
    }
  }
  return out;
}

export interface ParseOptions {
  file?: string;
  readFile?: (path: string) => string;
  /** Files matching an include pattern (default: a `*`/`?` glob in the last path component). */
  glob?: (pattern: string) => string[];
}

function defaultGlob(pattern: string): string[] {
  const dir = dirname(pattern);
  const base = basename(pattern);
  if (!/[*?[]/.test(base)) return [pattern];
  const re = new RegExp(
    `^${base
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((f) => re.test(f))
    .sort()
    .map((f) => join(dir, f));
}

function newSection(name: string, file: string, line: number): ConfSection {
  return { name, file, line, settings: [], sections: [] };
}

function addSetting(sec: ConfSection, s: ConfSetting): void {
  const i = sec.settings.findIndex((x) => x.key === s.key);
  if (i >= 0) sec.settings[i] = s;
  else sec.settings.push(s);
}

function addSection(parent: ConfSection, sec: ConfSection): void {
  const existing = parent.sections.find((x) => x.name === sec.name);
  if (!existing) {
    parent.sections.push(sec);
    return;
  }
  for (const s of sec.settings) addSetting(existing, s);
  for (const c of sec.sections) addSection(existing, c);
}

/** Parses swanctl.conf text (and its includes) into a section tree. */
export function parseSwanctlConf(text: string, opts: ParseOptions = {}): ConfSection {
  const file = opts.file ?? 'swanctl.conf';
  const read = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const glob = opts.glob ?? defaultGlob;
  const root = newSection('', file, 0);
  const parseInto = (src: string, f: string, stack: ConfSection[], depth: number): void => {
    if (depth > 10) throw new SwanctlParseError(f, 1, 'includes nested too deeply');
    const toks = lex(src, f);
    for (let k = 0; k < toks.length; k++) {
      const t = toks[k]!;
      const top = stack[stack.length - 1]!;
      if (t.t === 'nl') continue;
      if (t.t === '}') {
        if (stack.length <= 1) throw new SwanctlParseError(f, t.line, 'unexpected "}"');
        const done = stack.pop()!;
        addSection(stack[stack.length - 1]!, done);
        continue;
      }
      if (t.t === 'include') {
        const pat = isAbsolute(t.v) ? t.v : resolve(dirname(f), t.v);
        for (const inc of glob(pat)) {
          let body: string;
          try {
            body = read(inc);
          } catch (e) {
            throw new SwanctlParseError(
              f,
              t.line,
              `cannot read included file ${inc}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
            );
          }
          parseInto(body, inc, stack, depth + 1);
        }
        continue;
      }
      if (t.t === 'name') {
        let m = k + 1;
        while (toks[m]?.t === 'nl') m++;
        const next = toks[m];
        if (next?.t === '{') {
          stack.push(newSection(t.v, f, t.line));
          k = m;
          continue;
        }
        if (toks[k + 1]?.t === 'value') {
          const v = toks[k + 1] as { v: string | undefined };
          addSetting(top, { key: t.v, value: v.v, file: f, line: t.line });
          k++;
          continue;
        }
        throw new SwanctlParseError(f, t.line, `expected "=" or "{" after "${t.v}"`);
      }
      throw new SwanctlParseError(
        f,
        t.line,
        t.t === '{' ? 'unexpected "{" (section without a name)' : 'unexpected "="',
      );
    }
    if (depth === 0 && stack.length > 1) {
      const open = stack[stack.length - 1]!;
      throw new SwanctlParseError(open.file, open.line, `section "${open.name}" is not closed (missing "}")`);
    }
  };
  parseInto(text, file, [root], 0);
  return root;
}

// ---- converter -----------------------------------------------------------------------------------------

export interface ImportProblem {
  /** "swanctl.conf:12" */
  where: string;
  /** "connections.onprem.local.auth" */
  path: string;
  message: string;
}

export interface ImportOptions {
  /** How the PSKs are written into the YAML. */
  psk: { mode: 'file'; dir: string } | { mode: 'inline' };
  /** Source name in the header comment. */
  source?: string;
  /**
   * The swanctl directory (with x509/, x509ca/, private/, ...) that relative certificate names
   * and key searches use; without it only absolute certificate paths work.
   */
  swanctlDir?: string;
}

export interface ImportResult {
  ok: boolean;
  errors: ImportProblem[];
  warnings: ImportProblem[];
  /** The YAML text (when ok). */
  yaml?: string;
  /** PSK files to write (mode 'file'): path -> secret string as in swanctl.conf. */
  pskFiles: Map<string, { secret: string; section: string; conns: string[] }>;
  connections: string[];
  /** Which key file and intermediates were picked for local.certs / local.key (file names only). */
  certNotes: string[];
}

const get = (sec: ConfSection, key: string): ConfSetting | undefined =>
  sec.settings.find((s) => s.key === key);
const sub = (sec: ConfSection, name: string): ConfSection | undefined =>
  sec.sections.find((s) => s.name === name);
const listOf = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const isIp = (s: string): boolean => IPV4.test(s) || (/^[0-9a-fA-F:]+$/.test(s) && s.includes(':'));

/** Connection-level keys and what happens to them. */
const CONN_PASS = new Set(['remote_port', 'encap', 'dpd_delay', 'rekey_time', 'over_time', 'unique']);
const CONN_IGNORE: Record<string, string> = {
  mobike: 'ikegw does not do MOBIKE (RFC 4555); address changes of the peer are followed through NAT-T',
  dpd_timeout: 'IKEv1 only; IKEv2 liveness uses the retransmission schedule',
  aggressive: 'IKEv1 only',
  pull: 'virtual IPs only',
  ocsp: 'ikegw does no OCSP',
  keyingtries: 'ikegw retries by start_action/dpd_action',
  rand_time: 'ikegw applies its own rekey jitter',
  dscp: 'IKE packets are sent with the default DSCP',
  childless: 'ikegw always creates the first CHILD_SA with IKE_AUTH',
  ppk_id: 'postquantum preshared keys are not supported',
  ppk_required: 'postquantum preshared keys are not supported',
};
const CONN_FAIL: Record<string, string> = {
  vips: 'virtual IPs (remote-access clients) are not supported; ikegw is a site-to-site gateway',
  pools: 'address pools (remote access) are not supported; ikegw is a site-to-site gateway',
  if_id_in: 'XFRM interface IDs are not supported',
  if_id_out: 'XFRM interface IDs are not supported',
  mediation: 'mediation (RFC 5685-like connection brokering) is not supported',
  mediated_by: 'mediation is not supported',
  mediation_peer: 'mediation is not supported',
};

const CHILD_PASS = new Set([
  'rekey_time',
  'life_time',
  'rekey_bytes',
  'life_bytes',
  'rekey_packets',
  'life_packets',
  'replay_window',
  'reqid',
]);
const CHILD_IGNORE: Record<string, string> = {
  updown:
    'ikegw runs no updown scripts; it installs the routes to the peer CIDRs itself (the chart passes VPN_PEER_CIDRS)',
  hostaccess: 'updown scripts are not run',
  rand_time: 'ikegw applies its own rekey jitter',
  rand_bytes: 'ikegw applies its own rekey jitter',
  rand_packets: 'ikegw applies its own rekey jitter',
  inactivity: 'inactivity timeouts are not supported; the CHILD_SA stays up',
  priority: 'policy priorities are chosen by ikegw',
  interface: 'policies are not bound to an interface',
  policies_fwd_out: 'ikegw installs its own forward policies',
  sha256_96: 'ikegw uses the RFC 4868 truncation (128 bits) only',
  copy_df: 'the DF bit is handled by the data path',
  copy_ecn: 'ECN bits are handled by the data path',
  copy_dscp: 'DSCP bits are handled by the data path',
  hw_offload: 'no hardware offload setting',
};
const CHILD_FAIL: Record<string, string> = {
  ah_proposals: 'AH is not supported (ESP only)',
  ipcomp: 'IPComp is not supported',
  mark_in: 'XFRM marks are not supported',
  mark_out: 'XFRM marks are not supported',
  mark_in_sa: 'XFRM marks are not supported',
  set_mark_in: 'XFRM marks are not supported',
  set_mark_out: 'XFRM marks are not supported',
  if_id_in: 'XFRM interface IDs are not supported',
  if_id_out: 'XFRM interface IDs are not supported',
  label: 'security labels are not supported',
  label_mode: 'security labels are not supported',
  per_cpu_sas: 'per-CPU SAs are not supported',
  tfc_padding: 'TFC padding is not supported',
};

interface ConnDraft {
  name: string;
  /** A direction authenticates with the PSK (else no secret is looked up). */
  needsPsk: boolean;
  yaml: Record<string, unknown>;
  localIds: string[];
  remoteIds: string[];
}

interface Secret {
  section: ConfSection;
  secret: string;
  ids: string[];
}

/** Converts a parsed swanctl.conf into ikegw YAML. */
export function convertSwanctl(root: ConfSection, opts: ImportOptions): ImportResult {
  const errors: ImportProblem[] = [];
  const warnings: ImportProblem[] = [];
  const where = (x: { file: string; line: number }): string => `${basename(x.file)}:${x.line}`;
  const fail = (x: { file: string; line: number }, path: string, message: string): void => {
    errors.push({ where: where(x), path, message });
  };
  const warn = (x: { file: string; line: number }, path: string, message: string): void => {
    warnings.push({ where: where(x), path, message });
  };
  const result: ImportResult = {
    ok: false,
    errors,
    warnings,
    pskFiles: new Map(),
    connections: [],
    certNotes: [],
  };
  const keyNotes = result.certNotes;
  const creds = opts.swanctlDir ? new SwanctlCreds(opts.swanctlDir) : undefined;
  const credDir = (sub: string): string => (creds ? `${creds.dir}/${sub}/` : `swanctl/${sub}/`);

  for (const top of root.sections) {
    if (top.name === 'connections' || top.name === 'secrets') continue;
    if (top.name === 'pools') fail(top, 'pools', 'address pools (remote access) are not supported');
    else if (top.name === 'authorities')
      warn(
        top,
        'authorities',
        'authorities sections are ignored (CA certificates are taken from x509ca/; CRL and OCSP URIs are not fetched)',
      );
    else warn(top, top.name, 'unknown section ignored');
  }
  for (const s of root.settings) warn(s, s.key, 'top-level setting ignored');

  const conns = sub(root, 'connections');
  if (!conns || conns.sections.length === 0) {
    errors.push({ where: '-', path: 'connections', message: 'no connections found' });
    return result;
  }

  let listenPort: number | undefined;
  const drafts: ConnDraft[] = [];
  for (const c of conns.sections) {
    const d = convertConnection(c);
    if (d) drafts.push(d);
  }

  /** local.certs + local.key, or remote.cacerts, as charon would find them in the swanctl directory. */
  function certSide(
    side: 'local' | 'remote',
    sp: string,
    r: ConfSection,
    given: Array<{ name: string; at: ConfSetting | ConfSection }>,
  ): Record<string, unknown> {
    const sub = side === 'local' ? 'x509' : 'x509ca';
    const key = side === 'local' ? 'certs' : 'cacerts';
    const load = (g: { name: string; at: ConfSetting | ConfSection }) => {
      if (!creds && !isAbsolute(g.name)) {
        fail(g.at, `${sp}.${key}`, `${g.name} is relative to ${credDir(sub)}: pass --swanctl-dir`);
        return undefined;
      }
      const path = creds ? creds.resolve(sub, g.name) : g.name;
      const x509 = readCert(path);
      if (!x509) fail(g.at, `${sp}.${key}`, `${path} is missing or holds no certificate`);
      return x509 ? { path, x509 } : undefined;
    };
    if (side === 'remote') {
      if (given.length === 0) {
        const cas = (creds?.certs('x509ca') ?? []).filter((c) => c.x509.ca);
        if (cas.length === 0) {
          fail(
            r,
            `${sp}.cacerts`,
            `not set, and ${credDir('x509ca')} holds no CA certificate: ikegw needs the CA(s) the peer's certificate must chain to`,
          );
          return {};
        }
        warn(
          r,
          `${sp}.cacerts`,
          `not set: strongSwan trusts every CA in ${credDir('x509ca')}; all ${cas.length} written out (keep only the peer's CA)`,
        );
        return { cacerts: cas.map((c) => c.path) };
      }
      const out = given.map(load);
      return out.every((x) => x) ? { cacerts: out.map((x) => x!.path) } : {};
    }
    let chosen = given[0];
    if (!chosen) {
      const own = (creds?.certs('x509') ?? []).filter((c) => !c.x509.ca);
      if (own.length !== 1) {
        fail(
          r,
          `${sp}.certs`,
          `not set${own.length ? `, and ${credDir('x509')} holds ${own.length} certificates` : ''}: name our certificate (charon picks one by identity; ikegw needs it named)`,
        );
        return {};
      }
      warn(r, `${sp}.certs`, `not set: the only certificate in ${credDir('x509')}, ${own[0]!.path}, is used`);
      chosen = { name: own[0]!.path, at: r };
    } else if (given.length > 1) {
      warn(
        given[1]!.at,
        `${sp}.certs`,
        `${given.length} certificates: ikegw authenticates with one, the first (${given[0]!.name})`,
      );
    }
    const ee = load(chosen);
    if (!ee) return {};
    const chain = creds ? intermediates(creds, ee.x509) : [];
    if (!creds) {
      fail(
        chosen.at,
        `${sp}.key`,
        `the private key is found in the swanctl directory's private/: pass --swanctl-dir`,
      );
      return {};
    }
    const found = findKey(creds, ee.x509, basename(ee.path));
    if (!found.ok) {
      fail(chosen.at, `${sp}.key`, found.message);
      return {};
    }
    keyNotes.push(`${sp}.key: ${found.path} (the key of ${basename(ee.path)})`);
    if (chain.length)
      keyNotes.push(
        `${sp}.certs: intermediate(s) from the CA directory after ours: ${chain.map((c) => basename(c.path)).join(', ')}`,
      );
    return { certs: [ee.path, ...chain.map((c) => c.path)], key: found.path };
  }

  function convertConnection(c: ConfSection): ConnDraft | undefined {
    const p = `connections.${c.name}`;
    const out: Record<string, unknown> = {};
    const before = errors.length;
    let localIds: string[] = [];
    let remoteIds: string[] = [];
    let needsPsk = false;
    const addrs = (key: 'local_addrs' | 'remote_addrs'): string[] | undefined => {
      const s = get(c, key);
      if (!s) return undefined;
      const items = listOf(s.value);
      const bad = items.filter((a) => !isIp(a) && !/^%any[46]?$/.test(a));
      if (bad.length) {
        fail(
          s,
          `${p}.${key}`,
          `${bad.join(', ')}: ikegw takes IP addresses or %any only (no host names, ranges or subnets)`,
        );
        return undefined;
      }
      return items.map((a) => (a.startsWith('%any') ? '%any' : a));
    };
    const remote = addrs('remote_addrs');
    const local = addrs('local_addrs');
    if (!get(c, 'remote_addrs')) {
      warn(
        c,
        `${p}.remote_addrs`,
        'not set: accepting any peer (%any), as strongSwan does; ikegw can then only respond',
      );
      out.remote_addrs = ['%any'];
    } else if (remote) out.remote_addrs = remote;
    if (local?.some((a) => a !== '%any')) out.local_addrs = local.filter((a) => a !== '%any');

    for (const s of c.settings) {
      const k = s.key;
      if (k === 'remote_addrs' || k === 'local_addrs') continue;
      if (k === 'version') {
        if (s.value !== '2' && s.value !== '0')
          fail(s, `${p}.version`, `IKEv${s.value} is not supported; ikegw speaks IKEv2 only`);
        continue;
      }
      if (k === 'local_port') {
        const port = Number(s.value);
        if (port !== 500) {
          if (listenPort !== undefined && listenPort !== port)
            fail(
              s,
              `${p}.local_port`,
              `differs between connections (${listenPort}, ${port}); ikegw has one listen.port`,
            );
          listenPort = port;
        }
        continue;
      }
      if (k === 'proposals') {
        out.proposals = listOf(s.value);
        continue;
      }
      if (k === 'fragmentation') {
        const v = (s.value ?? 'yes').toLowerCase();
        if (v === 'no') out.fragmentation = false;
        else if (v === 'force')
          warn(s, `${p}.fragmentation`, 'force: ikegw fragments only when the peer supports it (yes)');
        continue;
      }
      if (k === 'reauth_time') {
        if (s.value && s.value !== '0')
          warn(
            s,
            `${p}.reauth_time`,
            'ikegw rekeys the IKE_SA (rekey_time) instead of reauthenticating; ignored',
          );
        continue;
      }
      if (k === 'send_cert') {
        const v = s.value ?? 'ifasked';
        if (['always', 'ifasked', 'never'].includes(v)) out.send_cert = v;
        else fail(s, `${p}.send_cert`, `"${v}" is not one of always, ifasked, never`);
        continue;
      }
      if (k === 'send_certreq') {
        if (s.value && /^(no|false)$/i.test(s.value))
          warn(s, `${p}.send_certreq`, 'ignored: ikegw sends CERTREQ whenever remote.auth is pubkey');
        continue;
      }
      if (CONN_PASS.has(k)) {
        if (s.value !== undefined) out[k] = k === 'remote_port' ? Number(s.value) : s.value;
        continue;
      }
      if (k in CONN_FAIL) {
        fail(s, `${p}.${k}`, CONN_FAIL[k]!);
        continue;
      }
      if (k in CONN_IGNORE) {
        warn(s, `${p}.${k}`, `ignored: ${CONN_IGNORE[k]}`);
        continue;
      }
      warn(s, `${p}.${k}`, 'unknown setting ignored');
    }
    if (out.encap !== undefined) out.encap = /^(yes|true)$/i.test(String(out.encap));

    // authentication rounds
    const rounds = (side: 'local' | 'remote'): ConfSection[] =>
      c.sections.filter((s) => s.name === side || s.name.startsWith(`${side}-`));
    for (const side of ['local', 'remote'] as const) {
      const rs = rounds(side);
      const sp = `${p}.${side}`;
      if (rs.length > 1) {
        fail(
          rs[1]!,
          `${p}.${rs[1]!.name}`,
          'multiple authentication rounds are not supported (PSK in one round only)',
        );
        continue;
      }
      const r = rs[0];
      if (!r) {
        fail(
          c,
          sp,
          `no ${side} section: strongSwan then authenticates with any certificate ${side === 'local' ? 'matching our address' : 'of a trusted CA'}; write ${side} { auth = pubkey ... } or ${side} { auth = psk }`,
        );
        continue;
      }
      const authSetting = get(r, 'auth');
      const auth = authSetting?.value ?? 'pubkey';
      // RFC 7427 / classic signature methods: strongSwan's pubkey, rsa/pss, rsa, ecdsa, ed25519
      // (optionally with "ike:" and "-<hash>..." constraints).
      const sig = /^(ike:)?(pubkey|rsa\/pss|rsa|ecdsa|ed25519|ed448)(-[a-z0-9-]+)?$/.exec(auth);
      let sideYaml: Record<string, unknown> = {};
      if (auth === 'psk') {
        needsPsk = true;
      } else if (sig) {
        const kind = sig[2]!;
        const constrained = kind !== 'pubkey' && !(kind === 'rsa/pss' && side === 'local');
        sideYaml.auth = side === 'local' && kind === 'rsa/pss' ? 'rsa/pss' : 'pubkey';
        if (constrained || sig[1] || sig[3]) {
          warn(
            authSetting ?? r,
            `${sp}.auth`,
            `"${auth}" written as ${sideYaml.auth}: ${side === 'local' ? 'ikegw signs with the key of the certificate' : "ikegw accepts any signature the peer's certificate key makes"}, with the hash negotiated by RFC 7427 (no key type or hash constraint)`,
          );
        }
        if (!authSetting)
          warn(r, `${sp}.auth`, "not set: strongSwan's default is pubkey (certificates); written as pubkey");
      } else {
        const what = /^eap/.test(auth)
          ? 'EAP authentication is not supported'
          : /^xauth/.test(auth)
            ? 'XAUTH (IKEv1) is not supported'
            : 'this authentication method is not supported';
        fail(
          authSetting ?? r,
          `${sp}.auth`,
          `"${auth}": ${what}; ikegw authenticates with pre-shared keys or certificates (psk, pubkey)`,
        );
      }
      const pubkey = sideYaml.auth !== undefined;
      const certFiles: Array<{ name: string; at: ConfSetting | ConfSection }> = [];
      for (const s of r.settings) {
        if (s.key === 'auth') continue;
        if (s.key === 'id') {
          if (s.value && s.value !== '%any') {
            sideYaml = { id: s.value, ...sideYaml };
            if (side === 'local') localIds = [s.value];
            else remoteIds = [s.value];
          }
          continue;
        }
        if ((s.key === 'certs' && side === 'local') || (s.key === 'cacerts' && side === 'remote')) {
          if (!pubkey) warn(s, `${sp}.${s.key}`, `ignored: ${side}.auth is ${auth}`);
          else for (const f of listOf(s.value)) certFiles.push({ name: f, at: s });
          continue;
        }
        if (s.key === 'certs' && side === 'remote') {
          fail(
            s,
            `${sp}.certs`,
            "pinning the peer's certificate is not supported: give the CA in remote.cacerts and the peer's identity in remote.id",
          );
          continue;
        }
        if (s.key === 'cacerts' && side === 'local') {
          warn(
            s,
            `${sp}.cacerts`,
            'ignored: ikegw sends the intermediates listed after our certificate in local.certs',
          );
          continue;
        }
        if (s.key === 'revocation') {
          if (s.value && s.value !== 'relaxed')
            warn(
              s,
              `${sp}.revocation`,
              `"${s.value}" not converted: ikegw fetches no CRLs or OCSP over the network`,
            );
          continue;
        }
        if (/^(pubkeys|cert_policy|ca_id|groups)$/.test(s.key)) {
          fail(
            s,
            `${sp}.${s.key}`,
            s.key === 'pubkeys'
              ? 'raw public keys are not supported (certificates only)'
              : `${s.key} constraints are not supported (ikegw checks the chain to remote.cacerts and remote.id only)`,
          );
          continue;
        }
        if (/^(eap_id|aaa_id|xauth_id)$/.test(s.key)) {
          fail(s, `${sp}.${s.key}`, 'EAP/XAUTH identities are not supported');
          continue;
        }
        warn(s, `${sp}.${s.key}`, 'ignored');
      }
      for (const s of r.sections) {
        // local { cert-<name> { file = ... } } is certs = ... written as a section; smartcards not
        const file = get(s, 'file')?.value;
        if (side === 'local' && /^cert/.test(s.name) && file && s.settings.length === 1) {
          if (pubkey) certFiles.push({ name: file, at: s });
          continue;
        }
        if (side === 'remote' && /^cacert/.test(s.name) && file && s.settings.length === 1) {
          if (pubkey) certFiles.push({ name: file, at: s });
          continue;
        }
        fail(
          s,
          `${sp}.${s.name}`,
          'certificate sections other than a plain file (smartcards, PKCS#11) are not supported',
        );
      }
      if (pubkey) Object.assign(sideYaml, certSide(side, sp, r, certFiles));
      if (Object.keys(sideYaml).length > 0) out[side] = sideYaml;
    }
    if (localIds.length === 0) localIds = (local ?? []).filter((a) => a !== '%any');
    if (remoteIds.length === 0) remoteIds = (remote ?? []).filter((a) => a !== '%any');

    for (const s of c.sections) {
      if (s.name === 'children' || s.name === 'local' || s.name === 'remote') continue;
      if (s.name.startsWith('local-') || s.name.startsWith('remote-')) continue;
      warn(s, `${p}.${s.name}`, 'unknown section ignored');
    }

    // children
    const ch = sub(c, 'children');
    const children: Record<string, unknown> = {};
    if (!ch || ch.sections.length === 0)
      fail(c, `${p}.children`, 'no children: ikegw needs at least one CHILD_SA');
    for (const k of ch?.sections ?? []) {
      const cp = `${p}.children.${k.name}`;
      const o: Record<string, unknown> = {};
      const ts = (key: 'local_ts' | 'remote_ts'): void => {
        const s = get(k, key);
        const items = listOf(s?.value ?? 'dynamic');
        const own = key === 'local_ts' ? (local ?? []) : (remote ?? []);
        const concrete = own.filter((a) => a !== '%any');
        const outTs: string[] = [];
        for (const it of items) {
          if (it === 'dynamic' || it === '%dynamic') {
            const only = concrete.length === 1 ? concrete[0] : undefined;
            if (only) {
              outTs.push(only.includes(':') ? `${only}/128` : `${only}/32`);
              warn(
                s ?? k,
                `${cp}.${key}`,
                `"dynamic" (the ${key === 'local_ts' ? 'local' : "peer's"} IKE address) written as ${outTs[outTs.length - 1]}`,
              );
            } else {
              fail(
                s ?? k,
                `${cp}.${key}`,
                `${s ? '"dynamic"' : 'not set (strongSwan uses "dynamic", the IKE address)'}: ikegw needs explicit CIDRs here${concrete.length ? '' : ` and ${key === 'local_ts' ? 'local_addrs' : 'remote_addrs'} has no single address to use`}`,
              );
            }
          } else outTs.push(it);
        }
        o[key] = outTs;
      };
      ts('local_ts');
      ts('remote_ts');
      for (const s of k.settings) {
        const key = s.key;
        if (key === 'local_ts' || key === 'remote_ts') continue;
        if (key === 'esp_proposals') {
          o.esp_proposals = listOf(s.value);
          continue;
        }
        if (key === 'mode') {
          if (s.value !== 'tunnel')
            fail(
              s,
              `${cp}.mode`,
              `"${s.value}": only tunnel mode is supported${s.value === 'pass' || s.value === 'drop' ? ' (no bypass/drop policies)' : ''}`,
            );
          continue;
        }
        if (key === 'start_action') {
          const v = (s.value ?? 'none').split('|').map((x) => x.trim());
          if (v.length === 1 && ['none', 'trap', 'start'].includes(v[0]!)) o.start_action = v[0];
          else if (v.includes('trap') && v.includes('start')) {
            o.start_action = 'start';
            warn(s, `${cp}.start_action`, '"trap|start" written as start (ikegw takes one start action)');
          } else if (v[0] === 'route') o.start_action = 'trap';
          else fail(s, `${cp}.start_action`, `"${s.value}" is not one of none, trap, start`);
          continue;
        }
        if (key === 'close_action') {
          const v = s.value ?? 'none';
          if (['none', 'trap', 'start'].includes(v)) o.close_action = v;
          else if (v === 'clear') o.close_action = 'none';
          else fail(s, `${cp}.close_action`, `"${v}" is not one of none, trap, start`);
          continue;
        }
        if (key === 'dpd_action') {
          const v = s.value ?? 'clear';
          if (['clear', 'trap', 'restart'].includes(v)) o.dpd_action = v;
          else if (v === 'none') o.dpd_action = 'clear';
          else if (v === 'hold') o.dpd_action = 'trap';
          else fail(s, `${cp}.dpd_action`, `"${v}" is not one of clear, trap, restart`);
          continue;
        }
        if (key === 'policies') {
          if (s.value && /^(no|false)$/i.test(s.value))
            fail(s, `${cp}.policies`, 'CHILD_SAs without policies (route-based VPN) are not supported');
          continue;
        }
        if (CHILD_PASS.has(key)) {
          if (s.value !== undefined)
            o[key] = key === 'replay_window' || key === 'reqid' ? Number(s.value) : s.value;
          continue;
        }
        if (key in CHILD_FAIL) {
          if (!(key === 'ipcomp' && /^(no|false)$/i.test(s.value ?? '')))
            fail(s, `${cp}.${key}`, CHILD_FAIL[key]!);
          continue;
        }
        if (key in CHILD_IGNORE) {
          warn(s, `${cp}.${key}`, `ignored: ${CHILD_IGNORE[key]}`);
          continue;
        }
        warn(s, `${cp}.${key}`, 'unknown setting ignored');
      }
      for (const s of k.sections) warn(s, `${cp}.${s.name}`, 'unknown section ignored');
      children[k.name] = o;
    }
    out.children = children;
    if (errors.length > before) return undefined;
    return { name: c.name, needsPsk, yaml: out, localIds, remoteIds };
  }

  // secrets
  const secrets: Secret[] = [];
  const sec = sub(root, 'secrets');
  for (const s of sec?.sections ?? []) {
    const type = /^[a-z0-9]+/.exec(s.name)?.[0] ?? '';
    if (['private', 'rsa', 'ecdsa', 'pkcs8', 'pkcs12', 'token'].includes(type)) {
      warn(
        s,
        `secrets.${s.name}`,
        'ignored: ikegw takes no key passphrases or tokens; local.key must be an unencrypted key file (protected by its mode)',
      );
      continue;
    }
    if (type !== 'ike') {
      warn(
        s,
        `secrets.${s.name}`,
        `${type || s.name} secrets are ignored (only "ike" pre-shared keys are used)`,
      );
      continue;
    }
    const v = get(s, 'secret');
    if (!v?.value) {
      fail(s, `secrets.${s.name}.secret`, 'is missing or empty');
      continue;
    }
    const ids = s.settings
      .filter((x) => x.key === 'id' || x.key.startsWith('id-'))
      .flatMap((x) => (x.value ? [x.value] : []));
    secrets.push({ section: s, secret: v.value, ids });
  }

  // PSK per connection, matched like charon: ids that name our or the peer's identity beat wildcard secrets.
  const yamlConns: Record<string, unknown> = {};
  const used = new Map<Secret, string[]>();
  for (const d of drafts) {
    if (!d.needsPsk) {
      yamlConns[d.name] = reorder(d.yaml);
      result.connections.push(d.name);
      continue;
    }
    const score = (s: Secret): number => {
      if (s.ids.length === 0) return 1;
      const remote = s.ids.some((i) => d.remoteIds.includes(i));
      const local = s.ids.some((i) => d.localIds.includes(i));
      return remote && local ? 4 : remote ? 3 : local ? 2 : 0;
    };
    const ranked = secrets.map((s) => ({ s, n: score(s) })).filter((x) => x.n > 0);
    const best = Math.max(0, ...ranked.map((x) => x.n));
    const top = ranked.filter((x) => x.n === best);
    if (top.length === 0) {
      errors.push({
        where: '-',
        path: `connections.${d.name}`,
        message: `no "ike" secret in secrets { } matches this connection (its IDs: local ${d.localIds.join(',') || '%any'}, remote ${d.remoteIds.join(',') || '%any'})`,
      });
      continue;
    }
    const distinct = new Set(top.map((x) => x.s.secret));
    if (distinct.size > 1) {
      errors.push({
        where: where(top[1]!.s.section),
        path: `connections.${d.name}`,
        message: `several different secrets match equally (${top.map((x) => `secrets.${x.s.section.name}`).join(', ')}); give them id = ... to tell them apart`,
      });
      continue;
    }
    const chosen = top[0]!.s;
    used.set(chosen, [...(used.get(chosen) ?? []), d.name]);
    if (opts.psk.mode === 'inline') d.yaml.psk = { value: chosen.secret };
    else {
      const path = join(opts.psk.dir, `${d.name}.psk`);
      d.yaml.psk = { file: path };
      result.pskFiles.set(path, { secret: chosen.secret, section: chosen.section.name, conns: [d.name] });
    }
    yamlConns[d.name] = reorder(d.yaml);
    result.connections.push(d.name);
  }
  if (errors.length > 0) return result;
  for (const s of secrets) {
    if (!used.has(s)) warn(s.section, `secrets.${s.section.name}`, 'matches no connection; not used');
  }

  const doc: Record<string, unknown> = { connections: yamlConns };
  if (listenPort !== undefined) doc.listen = { port: listenPort };
  const header = [
    `# ikegw configuration converted by "ikegw import-swanctl"${opts.source ? ` from ${opts.source}` : ''}.`,
    '# Check it with: ikegw config check <this file>',
    ...(opts.psk.mode === 'inline' ? ['# Contains pre-shared keys: keep this file secret (chmod 600).'] : []),
    ...warnings.map((w) => `# note: ${w.path}: ${w.message}`),
  ];
  const yaml = `${header.join('\n')}\n${stringify(doc, { lineWidth: 0 })}`;

  // Self-check with ikegw's loader (PSK files answered from memory).
  const files = result.pskFiles;
  const check = loadConfig(
    yaml,
    {},
    {
      readFile: (p) => {
        const f = files.get(p);
        // certificate and key files: the real ones (the PSK files may not be written yet)
        if (!f) return new Uint8Array(readFileSync(p));
        return new TextEncoder().encode(f.secret);
      },
    },
  );
  if (!check.ok) {
    for (const e of check.errors)
      errors.push({ where: '-', path: e.field, message: e.message.slice(e.field.length + 2) });
    return result;
  }
  result.ok = true;
  result.yaml = yaml;
  return result;
}

const KEY_ORDER = [
  'remote_addrs',
  'local_addrs',
  'remote_port',
  'local',
  'remote',
  'psk',
  'send_cert',
  'proposals',
  'encap',
  'fragmentation',
  'dpd_delay',
  'rekey_time',
  'over_time',
  'unique',
  'children',
];

function reorder(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KEY_ORDER) if (k in o) out[k] = o[k];
  for (const [k, v] of Object.entries(o)) if (!(k in out)) out[k] = v;
  return out;
}

// ---- command line -----------------------------------------------------------------------------------------

export interface ImportCliOptions {
  file: string;
  output?: string;
  pskDir?: string;
  inlinePsk?: boolean;
  /** Where x509/, x509ca/, private/ ... are (default: the directory of the file). */
  swanctlDir?: string;
}

export interface ImportIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** Default PSK directory when writing to stdout: referenced in the YAML, not written. */
export const DEFAULT_PSK_DIR = '/etc/ikegw/secrets';

/**
 * Creates `dir` and any missing parents with mode 0700 (chmod after mkdir, so the umask cannot
 * widen or narrow it). A directory that already exists keeps its mode: it may be shared.
 */
function makePrivateDir(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    mkdirSync(d, { mode: 0o700 });
    chmodSync(d, 0o700);
  }
}

/**
 * `ikegw import-swanctl FILE [-o OUT] [--psk-dir DIR | --inline-psk] [--swanctl-dir DIR]`. Exit codes: 0 converted,
 * 1 a file could not be read or written, 2 the input uses something ikegw cannot express (every
 * such setting is listed; nothing is written).
 */
export function importSwanctlMain(o: ImportCliOptions, io: ImportIo): number {
  let text: string;
  try {
    text = readFileSync(o.file, 'utf8');
  } catch (e) {
    io.stderr(
      `ikegw import-swanctl: cannot read ${o.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`,
    );
    return 1;
  }
  let root: ConfSection;
  try {
    root = parseSwanctlConf(text, { file: o.file });
  } catch (e) {
    if (!(e instanceof SwanctlParseError)) throw e;
    io.stderr(`ikegw import-swanctl: ${e.message}\n`);
    return 2;
  }
  const writePsk = o.pskDir !== undefined || (o.output !== undefined && !o.inlinePsk);
  const dir = resolve(o.pskDir ?? (o.output ? dirname(o.output) : DEFAULT_PSK_DIR));
  const r = convertSwanctl(root, {
    psk: o.inlinePsk ? { mode: 'inline' } : { mode: 'file', dir },
    source: basename(o.file),
    swanctlDir: resolve(o.swanctlDir ?? dirname(o.file)),
  });
  for (const w of r.warnings) io.stderr(`note: ${w.where}: ${w.path}: ${w.message}\n`);
  if (r.ok) for (const n of r.certNotes) io.stderr(`note: ${n}\n`);
  if (!r.ok || !r.yaml) {
    for (const e of r.errors)
      io.stderr(`error: ${e.where === '-' ? '' : `${e.where}: `}${e.path}: ${e.message}\n`);
    io.stderr(
      `ikegw import-swanctl: ${o.file} uses ${r.errors.length} setting${r.errors.length === 1 ? '' : 's'} ikegw cannot express; nothing written\n`,
    );
    return 2;
  }
  try {
    if (writePsk) {
      if (o.pskDir !== undefined && r.pskFiles.size > 0) makePrivateDir(dir);
      for (const [path, f] of r.pskFiles) {
        writeFileSync(path, `${f.secret}\n`, { mode: 0o600 });
        chmodSync(path, 0o600);
      }
    }
    if (o.output) {
      writeFileSync(o.output, r.yaml, { mode: o.inlinePsk ? 0o600 : 0o644 });
      if (o.inlinePsk) chmodSync(o.output, 0o600);
    } else io.stdout(r.yaml);
  } catch (e) {
    io.stderr(`ikegw import-swanctl: cannot write: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const lines = [
    `converted ${r.connections.length} connection(s): ${r.connections.join(', ')}${o.output ? ` -> ${o.output}` : ''}`,
  ];
  if (o.inlinePsk) lines.push('the pre-shared keys are inline in the YAML: keep it secret (mode 600)');
  else if (writePsk) {
    for (const [path, f] of r.pskFiles)
      lines.push(`wrote the PSK of secrets.${f.section} to ${path} (mode 600)`);
  } else {
    for (const [path, f] of r.pskFiles)
      lines.push(
        `put the PSK of secrets.${f.section} (connection ${f.conns.join(', ')}) into ${path} (mode 600), or rerun with --psk-dir DIR to have it written`,
      );
  }
  lines.push(`check it: ikegw config check ${o.output ?? '<file>'}`);
  io.stderr(`${lines.join('\n')}\n`);
  return 0;
}
