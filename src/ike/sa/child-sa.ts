// CHILD_SA installation into the data path through kernel effects (SaInstaller ops).
import type { AddSaSpec, EspAlgorithm, PolicySpec } from '../ports.js';
import type { EngineCtx } from '../task/context.js';
import { Encr, Integ } from '../wire/constants.js';
import type { ChildSa, IkeSa } from './ike-sa.js';
import type { EspSuite } from './proposal.js';
import { formatTs } from './traffic-selector.js';

export function espAlgorithm(s: EspSuite): EspAlgorithm {
  if (s.encr.id === Encr.AES_GCM_16) return { kind: 'aead', name: 'aes-gcm-16', keyBits: s.encr.keyBits };
  if (s.encr.id === Encr.CHACHA20_POLY1305) return { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 };
  const integ =
    s.integ === Integ.HMAC_SHA1_96
      ? 'hmac-sha1-96'
      : s.integ === Integ.HMAC_SHA2_256_128
        ? 'hmac-sha2-256-128'
        : s.integ === Integ.HMAC_SHA2_384_192
          ? 'hmac-sha2-384-192'
          : 'hmac-sha2-512-256';
  if (s.encr.id === Encr.AES_CBC)
    return { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: s.encr.keyBits, integ };
  throw new Error(`ESP encryption ${s.encr.id} has no data-path mapping`);
}

export interface ChildKeys {
  encrIn: Uint8Array;
  integIn: Uint8Array;
  encrOut: Uint8Array;
  integOut: Uint8Array;
}

function policies(sa: IkeSa, child: ChildSa, trap: boolean): PolicySpec[] {
  const out: PolicySpec[] = [];
  for (const l of child.localTs) {
    for (const r of child.remoteTs) {
      if (l.family !== r.family) continue;
      const base = { reqid: child.reqid, trap };
      out.push({
        ...base,
        direction: 'out',
        src: l,
        dst: r,
        tunnelSrc: sa.local.address,
        tunnelDst: sa.remote.address,
      });
      out.push({
        ...base,
        direction: 'in',
        src: r,
        dst: l,
        tunnelSrc: sa.remote.address,
        tunnelDst: sa.local.address,
      });
      out.push({
        ...base,
        direction: 'fwd',
        src: r,
        dst: l,
        tunnelSrc: sa.remote.address,
        tunnelDst: sa.local.address,
      });
    }
  }
  return out;
}

/** Queue addSa (in, out) and policies; child.onInstalled fires when all completed. */
export function installChild(ctx: EngineCtx, sa: IkeSa, child: ChildSa, keys: ChildKeys): void {
  const alg = espAlgorithm(child.suite);
  const encap = child.encap ? { sport: sa.local.port, dport: sa.remote.port } : undefined;
  const life = {
    softBytes: child.cfg.rekeyBytes || undefined,
    hardBytes: child.cfg.lifeBytes || undefined,
    softPackets: child.cfg.rekeyPackets || undefined,
    hardPackets: child.cfg.lifePackets || undefined,
  };
  const common = {
    reqid: child.reqid,
    protocol: 'esp' as const,
    mode: 'tunnel' as const,
    alg,
    encap,
    esn: child.suite.esn,
    replayWindow: child.cfg.replayWindow,
    lifetime: life,
    name: `${sa.conn.name}/${child.cfg.name}`,
  };
  const inSpec: AddSaSpec = {
    ...common,
    src: sa.remote.address,
    dst: sa.local.address,
    spi: child.spiIn,
    encKey: keys.encrIn,
    integKey: keys.integIn,
    inbound: true,
    srcTs: child.remoteTs,
    dstTs: child.localTs,
  };
  const outSpec: AddSaSpec = {
    ...common,
    src: sa.local.address,
    dst: sa.remote.address,
    spi: child.spiOut,
    encKey: keys.encrOut,
    integKey: keys.integOut,
    inbound: false,
    srcTs: child.localTs,
    dstTs: child.remoteTs,
  };
  child.state = 'INSTALLING';
  const pols = policies(sa, child, false);
  child.pendingOps = 2 + pols.length;
  const done = (what: string) => (error?: string) => {
    if (error && !child.installError) child.installError = `${what}: ${error}`;
    child.pendingOps--;
    if (child.pendingOps === 0) {
      if (!child.installError) {
        child.state = 'INSTALLED';
        child.installedAtMs = ctx.now;
      }
      const cb = child.onInstalled;
      child.onInstalled = undefined;
      cb?.(child.installError);
    }
  };
  child.installedIn = { src: inSpec.src, dst: inSpec.dst };
  ctx.kernel({ op: 'addSa', spec: inSpec }, done('add inbound SA'));
  child.installedOut = { src: outSpec.src, dst: outSpec.dst };
  ctx.kernel({ op: 'addSa', spec: outSpec }, done('add outbound SA'));
  for (const p of pols) ctx.kernel({ op: 'addPolicy', policy: p }, done(`add ${p.direction} policy`));
  child.policiesInstalled = true;
}

/** Queue removal of the child's SAs and policies. */
export function uninstallChild(ctx: EngineCtx, sa: IkeSa, child: ChildSa): void {
  const ignore = (what: string) => (error?: string) => {
    if (error) ctx.log('debug', 'kernel', `${what} during CHILD_SA removal: ${error}`, sa);
  };
  if (child.policiesInstalled) {
    for (const p of policies(sa, child, false))
      ctx.kernel({ op: 'delPolicy', policy: p }, ignore(`del ${p.direction} policy`));
    child.policiesInstalled = false;
  }
  if (child.installedIn) {
    ctx.kernel(
      { op: 'delSa', id: { ...child.installedIn, spi: child.spiIn, protocol: 'esp' } },
      ignore('del inbound SA'),
    );
    child.installedIn = undefined;
  }
  if (child.installedOut) {
    ctx.kernel(
      { op: 'delSa', id: { ...child.installedOut, spi: child.spiOut, protocol: 'esp' } },
      ignore('del outbound SA'),
    );
    child.installedOut = undefined;
  }
  child.state = 'DELETED';
}

/** Trap policies for a child config (start_action = trap), installed before any SA exists. */
export function trapPolicies(
  local: string,
  remote: string,
  child: { reqid: number; localTs: ChildSa['localTs']; remoteTs: ChildSa['remoteTs'] },
): PolicySpec[] {
  const out: PolicySpec[] = [];
  for (const l of child.localTs) {
    for (const r of child.remoteTs) {
      if (l.family !== r.family) continue;
      out.push({
        reqid: child.reqid,
        trap: true,
        direction: 'out',
        src: l,
        dst: r,
        tunnelSrc: local,
        tunnelDst: remote,
      });
    }
  }
  return out;
}

export function describeTs(ts: ChildSa['localTs']): string[] {
  return ts.map(formatTs);
}
