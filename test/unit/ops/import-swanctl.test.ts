// import-swanctl: strongSwan's settings syntax, the conversion of real-world-style swanctl.conf
// files (the reference chart's among them), what it refuses, and the CLI around it.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  convertSwanctl,
  type ImportResult,
  parseSwanctlConf,
  type SwanctlParseError,
} from '../../../src/cli/import-swanctl.js';
import { cliMain } from '../../../src/cli/main.js';
import { loadConfig } from '../../../src/daemon/config.js';

const dir = mkdtempSync(join(tmpdir(), 'ikegw-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function convert(text: string, inline = true, files: Record<string, string> = {}): ImportResult {
  const root = parseSwanctlConf(text, {
    file: '/etc/swanctl/swanctl.conf',
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return f;
    },
    glob: (pat) =>
      Object.keys(files)
        .filter((f) => new RegExp(`^${pat.replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`).test(f))
        .sort(),
  });
  return convertSwanctl(root, {
    psk: inline ? { mode: 'inline' } : { mode: 'file', dir: '/etc/ikegw/secrets' },
    source: 'swanctl.conf',
  });
}

const problems = (r: ImportResult) => r.errors.map((e) => `${e.where} ${e.path}: ${e.message}`);

// The reference chart's template (edgelesssys/constellation dev-docs/howto/vpn), rendered with
// ipsec.peer=198.51.100.1, podCIDR/serviceCIDR defaults and two peer CIDRs.
const REFERENCE = `
connections {
    net-net {
      remote_addrs = 198.51.100.1
      local {
          auth = psk
      }
      remote {
          auth = psk
      }
      children {
          net-net {
              local_ts  = 10.10.0.0/16,10.96.0.0/12
              remote_ts = 192.168.100.0/24,192.168.200.0/24
              start_action = trap
          }
      }
    }
}

secrets {
    ike {
        secret = "chart-psk-value-0123456789"
    }
}
`;

describe('parser (strongSwan settings syntax)', () => {
  it('sections, values to the end of line, comments, quotes with escapes, merging, last key wins', () => {
    const root = parseSwanctlConf(
      `# comment
connections { a { remote_addrs = 192.0.2.1 # trailing comment
  proposals = aes128-sha256-modp2048 , aes256gcm16-prfsha384-ecp384
  local { auth = psk }
}}
connections
{
  a {
    version = 1
    version = 2
    children { c { local_ts = 10.0.0.0/8 } }
  }
}
secrets { ike-x { secret = "a \\"quoted\\" #not-a-comment \\\\ value" } }
empty =
`,
      { file: 'x.conf' },
    );
    const conns = root.sections.find((s) => s.name === 'connections')!;
    expect(conns.sections.map((s) => s.name)).toEqual(['a']);
    const a = conns.sections[0]!;
    expect(a.settings.map((s) => [s.key, s.value, s.line])).toEqual([
      ['remote_addrs', '192.0.2.1', 2],
      ['proposals', 'aes128-sha256-modp2048 , aes256gcm16-prfsha384-ecp384', 3],
      ['version', '2', 10],
    ]);
    expect(a.sections.map((s) => s.name)).toEqual(['local', 'children']);
    const secret = root.sections.find((s) => s.name === 'secrets')!.sections[0]!.settings[0]!;
    expect(secret.value).toBe('a "quoted" #not-a-comment \\ value');
    expect(root.settings).toEqual([{ key: 'empty', value: undefined, file: 'x.conf', line: 15 }]);
  });

  it('follows include globs relative to the including file', () => {
    const r = convert('include conf.d/*.conf\nsecrets { ike { secret = s3cret-s3cret-s3cret } }\n', true, {
      '/etc/swanctl/conf.d/a.conf':
        'connections { a { remote_addrs = 192.0.2.1\n local { auth = psk }\n remote { auth = psk }\n children { c { local_ts = 10.0.0.0/8\n remote_ts = 172.16.0.0/16 } } } }\n',
      '/etc/swanctl/conf.d/b.conf': 'connections { a { dpd_delay = 30s } }\n',
    });
    expect(problems(r)).toEqual([]);
    expect(r.yaml).toContain('dpd_delay: 30s');
  });

  it('reports syntax errors with file and line', () => {
    const bad = (t: string) => {
      try {
        parseSwanctlConf(t, { file: 'swanctl.conf' });
      } catch (e) {
        return (e as SwanctlParseError).message;
      }
      return 'no error';
    };
    expect(bad('connections {\n  a {\n    x = 1\n  }\n')).toBe(
      'swanctl.conf:1: section "connections" is not closed (missing "}")',
    );
    expect(bad('a = 1\n}\n')).toBe('swanctl.conf:2: unexpected "}"');
    expect(bad('"a" = 1\n')).toBe(
      'swanctl.conf:1: unexpected string (a quoted string is only allowed as a value)',
    );
    expect(bad('a b\n')).toBe('swanctl.conf:1: expected "=" or "{" after "a"');
    expect(bad('x = "open\n')).toBe('swanctl.conf:2: unterminated string');
  });
});

describe('conversion', () => {
  it("the reference chart's swanctl.conf", () => {
    const r = convert(REFERENCE, false);
    expect(problems(r)).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.yaml).toBe(`# ikegw configuration converted by "ikegw import-swanctl" from swanctl.conf.
# Check it with: ikegw config check <this file>
connections:
  net-net:
    remote_addrs:
      - 198.51.100.1
    psk:
      file: /etc/ikegw/secrets/net-net.psk
    children:
      net-net:
        local_ts:
          - 10.10.0.0/16
          - 10.96.0.0/12
        remote_ts:
          - 192.168.100.0/24
          - 192.168.200.0/24
        start_action: trap
`);
    expect([...r.pskFiles]).toEqual([
      [
        '/etc/ikegw/secrets/net-net.psk',
        { secret: 'chart-psk-value-0123456789', section: 'ike', conns: ['net-net'] },
      ],
    ]);
    // and it is what ikegw --from-env builds from the chart's environment
    const loaded = loadConfig(
      r.yaml!,
      {},
      { readFile: () => new TextEncoder().encode('chart-psk-value-0123456789') },
    );
    expect(loaded.ok).toBe(true);
  });

  it('a site-to-site gateway with proposals, IDs, DPD, two children and per-peer secrets', () => {
    const r = convert(`
connections {
  hq {
    version = 2
    local_addrs = 203.0.113.5
    remote_addrs = 198.51.100.1
    proposals = aes256gcm16-prfsha384-ecp384, aes256-sha256-modp3072
    dpd_delay = 30s
    rekey_time = 8h
    encap = yes
    mobike = no
    local {
      auth = psk
      id = @gw.cluster.example.com
    }
    remote {
      auth = psk
      id = hq.example.com
    }
    children {
      pods {
        local_ts = 10.10.0.0/16
        remote_ts = 192.168.0.0/16
        esp_proposals = aes256gcm16-ecp384
        start_action = start
        dpd_action = restart
        close_action = start
        rekey_time = 1h
        updown = /usr/local/libexec/ipsec/_updown iptables
      }
      services {
        local_ts = 10.96.0.0/12[tcp/443]
        remote_ts = 192.168.0.0/16
        start_action = trap
        dpd_action = restart
      }
    }
  }
  branch {
    remote_addrs = 192.0.2.77
    local { auth = psk }
    remote { auth = psk }
    children {
      net { local_ts = 10.10.0.0/16
            remote_ts = 172.16.5.0/24 }
    }
  }
}
secrets {
  ike-hq {
    id-hq = hq.example.com
    secret = 0x0123456789abcdef0123456789abcdef
  }
  ike-any {
    secret = "branch-office-psk-value"
  }
  eap-carol {
    id = carol
    secret = ignored
  }
}
`);
    expect(problems(r)).toEqual([]);
    expect(r.warnings.map((w) => `${w.where} ${w.path}: ${w.message}`)).toEqual([
      'swanctl.conf:11 connections.hq.mobike: ignored: ikegw does not do MOBIKE (RFC 4555); address changes of the peer are followed through NAT-T',
      'swanctl.conf:29 connections.hq.children.pods.updown: ignored: ikegw runs no updown scripts; it installs the routes to the peer CIDRs itself (the chart passes VPN_PEER_CIDRS)',
      'swanctl.conf:57 secrets.eap-carol: eap secrets are ignored (only "ike" pre-shared keys are used)',
    ]);
    expect(r.yaml).toContain(`connections:
  hq:
    remote_addrs:
      - 198.51.100.1
    local_addrs:
      - 203.0.113.5
    local:
      id: "@gw.cluster.example.com"
    remote:
      id: hq.example.com
    psk:
      value: "0x0123456789abcdef0123456789abcdef"
    proposals:
      - aes256gcm16-prfsha384-ecp384
      - aes256-sha256-modp3072
    encap: true
    dpd_delay: 30s
    rekey_time: 8h
    children:
      pods:
        local_ts:
          - 10.10.0.0/16
        remote_ts:
          - 192.168.0.0/16
        esp_proposals:
          - aes256gcm16-ecp384
        start_action: start
        dpd_action: restart
        close_action: start
        rekey_time: 1h
      services:
        local_ts:
          - 10.96.0.0/12[tcp/443]
`);
    expect(r.yaml).toContain(`  branch:
    remote_addrs:
      - 192.0.2.77
    psk:
      value: branch-office-psk-value
`);
    expect(r.yaml).toContain('# Contains pre-shared keys: keep this file secret (chmod 600).');
    const loaded = loadConfig(r.yaml!, {});
    expect(loaded.ok).toBe(true);
    if (loaded.ok) {
      const hq = loaded.value.engine.connections[0]!;
      expect(Buffer.from(hq.psk).toString('hex')).toBe('0123456789abcdef0123456789abcdef');
      expect(hq.dpdAction).toBe('restart');
    }
  });

  it('strongSwan test-suite style net-net with secrets selected by ID and dynamic selectors', () => {
    const r = convert(`
connections {
   gw-gw {
      local_addrs  = 192.168.0.1
      remote_addrs = 192.168.0.2
      local {
         auth = psk
         id = moon.strongswan.org
      }
      remote {
         auth = psk
         id = sun.strongswan.org
      }
      children {
         net-net {
            local_ts  = 10.1.0.0/16
            remote_ts = 10.2.0.0/16
            updown = /usr/local/libexec/ipsec/_updown iptables
            rekey_time = 5400
            rekey_bytes = 500000000
            rekey_packets = 1000000
            esp_proposals = aes128gcm128-x25519
         }
         host-host {
            esp_proposals = aes128-sha256
         }
      }
      version = 2
      mobike = no
      reauth_time = 10800
      proposals = aes128-sha256-x25519
   }
}
secrets {
   ike-moon-sun {
      id-moon = moon.strongswan.org
      id-sun = sun.strongswan.org
      secret = 0sv+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL
   }
   ike-other {
      id = venus.strongswan.org
      secret = other-secret-value-not-used
   }
}`);
    expect(problems(r)).toEqual([]);
    expect(r.warnings.map((w) => w.message)).toContain(
      '"dynamic" (the local IKE address) written as 192.168.0.1/32',
    );
    expect(r.warnings.map((w) => `${w.path}: ${w.message}`)).toContain(
      'secrets.ike-other: matches no connection; not used',
    );
    expect(r.yaml).toContain('value: 0sv+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL');
    expect(r.yaml).toContain(`      host-host:
        local_ts:
          - 192.168.0.1/32
        remote_ts:
          - 192.168.0.2/32
`);
    expect(r.yaml).toContain('rekey_bytes: "500000000"');
  });

  it('refuses what ikegw cannot express, naming file, line and setting', () => {
    const r = convert(`
connections {
  rw {
    version = 1
    remote_addrs = vpn.example.com
    pools = rw-pool
    local {
      auth = pubkey
      certs = moonCert.pem
    }
    remote {
      auth = eap-mschapv2
      eap_id = %any
    }
    children {
      t {
        mode = transport
        ah_proposals = sha256
        local_ts = dynamic
        mark_in = 42
      }
    }
  }
  nocert {
    remote_addrs = 192.0.2.1
    children { c { local_ts = 10.0.0.0/8
                   remote_ts = 172.16.0.0/16 } }
  }
  rounds {
    remote_addrs = 192.0.2.2
    local-1 { auth = psk }
    local-2 { auth = psk }
    remote { auth = psk }
    children { c { local_ts = 10.0.0.0/8
                   remote_ts = 10.2.0.0/16 } }
  }
}
pools { rw-pool { addrs = 10.3.0.0/24 } }
secrets { ike { secret = some-secret-value-long-enough } }
`);
    expect(r.ok).toBe(false);
    expect(problems(r)).toEqual([
      'swanctl.conf:38 pools: address pools (remote access) are not supported',
      'swanctl.conf:5 connections.rw.remote_addrs: vpn.example.com: ikegw takes IP addresses or %any only (no host names, ranges or subnets)',
      'swanctl.conf:4 connections.rw.version: IKEv1 is not supported; ikegw speaks IKEv2 only',
      'swanctl.conf:6 connections.rw.pools: address pools (remote access) are not supported; ikegw is a site-to-site gateway',
      'swanctl.conf:9 connections.rw.local.certs: moonCert.pem is relative to swanctl/x509/: pass --swanctl-dir',
      'swanctl.conf:12 connections.rw.remote.auth: "eap-mschapv2": EAP authentication is not supported; ikegw authenticates with pre-shared keys or certificates (psk, pubkey)',
      'swanctl.conf:13 connections.rw.remote.eap_id: EAP/XAUTH identities are not supported',
      'swanctl.conf:19 connections.rw.children.t.local_ts: "dynamic": ikegw needs explicit CIDRs here and local_addrs has no single address to use',
      'swanctl.conf:16 connections.rw.children.t.remote_ts: not set (strongSwan uses "dynamic", the IKE address): ikegw needs explicit CIDRs here and remote_addrs has no single address to use',
      'swanctl.conf:17 connections.rw.children.t.mode: "transport": only tunnel mode is supported',
      'swanctl.conf:18 connections.rw.children.t.ah_proposals: AH is not supported (ESP only)',
      'swanctl.conf:20 connections.rw.children.t.mark_in: XFRM marks are not supported',
      'swanctl.conf:24 connections.nocert.local: no local section: strongSwan then authenticates with any certificate matching our address; write local { auth = pubkey ... } or local { auth = psk }',
      'swanctl.conf:24 connections.nocert.remote: no remote section: strongSwan then authenticates with any certificate of a trusted CA; write remote { auth = pubkey ... } or remote { auth = psk }',
      'swanctl.conf:32 connections.rounds.local-2: multiple authentication rounds are not supported (PSK in one round only)',
    ]);
    expect(r.yaml).toBeUndefined();
  });

  it('a connection without a matching secret, and ambiguous secrets', () => {
    const conn = `connections { a { remote_addrs = 192.0.2.1
      local { auth = psk }
      remote { auth = psk
               id = peer.example.com }
      children { c { local_ts = 10.0.0.0/8
                     remote_ts = 172.16.0.0/16 } } } }\n`;
    const none = convert(`${conn}secrets { ike-x { id = other.example.com\n secret = abcdefabcdefabcdef } }`);
    expect(problems(none)).toEqual([
      '- connections.a: no "ike" secret in secrets { } matches this connection (its IDs: local %any, remote peer.example.com)',
    ]);
    const two = convert(
      `${conn}secrets { ike-1 { secret = first-secret-aaaaaaaa }\n ike-2 { secret = second-secret-bbbbbbbb } }`,
    );
    expect(problems(two)).toEqual([
      'swanctl.conf:8 connections.a: several different secrets match equally (secrets.ike-1, secrets.ike-2); give them id = ... to tell them apart',
    ]);
  });

  it("runs the result through ikegw's config loader (e.g. a proposal ikegw does not implement)", () => {
    const r = convert(`connections { a { remote_addrs = 192.0.2.1
      proposals = 3des-md5-modp1024
      local { auth = psk }
      remote { auth = psk }
      children { c { local_ts = 10.0.0.0/8
                     remote_ts = 172.16.0.0/16 } } } }
secrets { ike { secret = some-secret-value-long-enough } }`);
    expect(r.ok).toBe(false);
    expect(r.errors[0]?.path).toBe('connections.a.proposals[0]');
  });
});

describe('ikegw import-swanctl (CLI)', () => {
  async function cli(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await cliMain(args, { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {} });
    return { code, out: out.join(''), err: err.join('') };
  }

  it('-o writes the YAML and the PSK to a 0600 file next to it, and says so', async () => {
    const src = join(dir, 'swanctl.conf');
    writeFileSync(src, REFERENCE);
    const out = join(dir, 'ikegw.yaml');
    const r = await cli(['import-swanctl', src, '-o', out]);
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    const psk = join(dir, 'net-net.psk');
    expect(r.err).toBe(
      `converted 1 connection(s): net-net -> ${out}\nwrote the PSK of secrets.ike to ${psk} (mode 600)\ncheck it: ikegw config check ${out}\n`,
    );
    expect(readFileSync(psk, 'utf8')).toBe('chart-psk-value-0123456789\n');
    expect(statSync(psk).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).not.toContain('chart-psk-value');
    const check = await cli(['config', 'check', out]);
    expect(check.code).toBe(0);
    expect(check.out).toBe(`${out}: OK (1 connection: net-net; 1 child)\n`);
  });

  it('--psk-dir creates a missing directory (and its parents) with mode 0700', async () => {
    const src = join(dir, 'swanctl.conf');
    writeFileSync(src, REFERENCE);
    const out = join(dir, 'with-dir.yaml');
    const secrets = join(dir, 'new', 'secrets');
    const r = await cli(['import-swanctl', src, '-o', out, '--psk-dir', secrets]);
    expect(r.err).not.toContain('cannot write');
    expect(r.code).toBe(0);
    const psk = join(secrets, 'net-net.psk');
    expect(readFileSync(psk, 'utf8')).toBe('chart-psk-value-0123456789\n');
    expect(statSync(psk).mode & 0o777).toBe(0o600);
    expect(statSync(secrets).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'new')).mode & 0o777).toBe(0o700);
    expect(readFileSync(out, 'utf8')).toContain(`file: ${psk}`);
    // an existing directory keeps its mode (it may be shared, e.g. /etc/ikegw/secrets)
    const existing = join(dir, 'existing');
    mkdirSync(existing, { mode: 0o750 });
    chmodSync(existing, 0o750);
    const again = await cli(['import-swanctl', src, '-o', out, '--psk-dir', existing]);
    expect(again.code).toBe(0);
    expect(statSync(existing).mode & 0o777).toBe(0o750);
  });

  it('to stdout without writing secrets; --inline-psk; refusals exit 2 and write nothing', async () => {
    const src = join(dir, 'swanctl.conf');
    writeFileSync(src, REFERENCE);
    const r = await cli(['import-swanctl', src]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('file: /etc/ikegw/secrets/net-net.psk');
    expect(r.out + r.err).not.toContain('chart-psk-value');
    expect(r.err).toContain(
      'put the PSK of secrets.ike (connection net-net) into /etc/ikegw/secrets/net-net.psk (mode 600), or rerun with --psk-dir DIR to have it written',
    );
    const inline = await cli(['import-swanctl', src, '--inline-psk']);
    expect(inline.out).toContain('value: chart-psk-value-0123456789');
    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, REFERENCE.replace('auth = psk', 'auth = eap-tls'));
    const out = join(dir, 'never.yaml');
    const b = await cli(['import-swanctl', bad, '-o', out]);
    expect(b.code).toBe(2);
    expect(b.err).toContain('error: bad.conf:6: connections.net-net.local.auth: "eap-tls"');
    expect(b.err).toContain(
      `ikegw import-swanctl: ${bad} uses 1 setting ikegw cannot express; nothing written`,
    );
    expect(() => statSync(out)).toThrow();
    expect((await cli(['import-swanctl', join(dir, 'missing.conf')])).code).toBe(1);
    expect((await cli(['import-swanctl'])).code).toBe(2);
  });
});
