// CHILD_SA installation into the data path through kernel effects (SaInstaller ops).
import type { ChildConfig } from '../config.js';
import { deriveChildKeys } from '../crypto/keymat.js';
import { integSuite, keymatLen } from '../crypto/suites.js';
import type { AddSaSpec, EspAlgorithm, PolicySpec, SaId, TsRange } from '../ports.js';
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

export interface InstallOptions {
  /**
   * Install the outbound SA now (default). The responder of a CHILD_SA rekey defers it until the
   * initiator deletes the old SA, so it never sends on an SA the initiator has not installed yet
   * (strongSwan's child_sa_outbound_state_t).
   */
  outbound?: boolean;
}

/** Queue addSa (in, [out]) and policies; child.onInstalled fires when all completed. */
export function installChild(
  ctx: EngineCtx,
  sa: IkeSa,
  child: ChildSa,
  keys: ChildKeys,
  opts: InstallOptions = {},
): void {
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
  const outbound = opts.outbound ?? true;
  child.state = 'INSTALLING';
  const pols = policies(sa, child, false);
  child.pendingOps = (outbound ? 2 : 1) + pols.length;
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
  if (outbound) {
    child.installedOut = { src: outSpec.src, dst: outSpec.dst };
    ctx.kernel({ op: 'addSa', spec: outSpec }, done('add outbound SA'));
  } else {
    child.pendingOutbound = outSpec;
  }
  for (const p of pols) ctx.kernel({ op: 'addPolicy', policy: p }, done(`add ${p.direction} policy`));
  child.policiesInstalled = true;
}

/** Install the outbound SA that installChild({outbound: false}) held back. */
export function installOutbound(ctx: EngineCtx, sa: IkeSa, child: ChildSa): void {
  const spec = child.pendingOutbound;
  if (!spec) return;
  child.pendingOutbound = undefined;
  child.installedOut = { src: spec.src, dst: spec.dst };
  ctx.kernel({ op: 'addSa', spec }, (error) => {
    if (error)
      ctx.log('error', 'kernel', `installing outbound SA of CHILD_SA ${child.cfg.name} failed: ${error}`, sa);
  });
}

/** KEYMAT for a CHILD_SA (RFC 7296 §2.17), split into our inbound and outbound keys. */
export function childKeysFor(
  sa: IkeSa,
  suite: EspSuite,
  weInitiated: boolean,
  nonceI: Uint8Array,
  nonceR: Uint8Array,
  shared?: Uint8Array,
): ChildKeys {
  const k = deriveChildKeys(
    sa.suite!.prf,
    sa.keys!.skD,
    nonceI,
    nonceR,
    shared,
    keymatLen(suite.encr),
    suite.integ ? integSuite(suite.integ).keyLen : 0,
  );
  return weInitiated
    ? { encrOut: k.encrI, integOut: k.integI, encrIn: k.encrR, integIn: k.integR }
    : { encrOut: k.encrR, integOut: k.integR, encrIn: k.encrI, integIn: k.integI };
}

export function newChild(
  ctx: EngineCtx,
  sa: IkeSa,
  cfg: ChildConfig,
  suite: EspSuite,
  spiIn: number,
  spiOut: number,
  localTs: TsRange[],
  remoteTs: TsRange[],
): ChildSa {
  return {
    uid: ctx.newUid(),
    cfg,
    state: 'CREATED',
    spiIn,
    spiOut,
    reqid: cfg.reqid,
    suite,
    localTs,
    remoteTs,
    encap: sa.local.port === ctx.nattPort || sa.remote.port === ctx.nattPort || sa.natLocal || sa.natRemote,
    pendingOps: 0,
    policiesInstalled: false,
    // the optional fields too: one object shape for every CHILD_SA (see newSa in engine.ts)
    viaAuth: undefined,
    installError: undefined,
    onInstalled: undefined,
    installedAtMs: undefined,
    rekeyAtMs: undefined,
    expireAtMs: undefined,
    installedIn: undefined,
    installedOut: undefined,
    pendingOutbound: undefined,
    rekey: undefined,
    rekeyedByPeer: undefined,
    replaces: undefined,
    reauthOf: undefined,
    reauthedBy: undefined,
  };
}

/** Queue removal of the child's SAs and policies. */
export function uninstallChild(
  ctx: EngineCtx,
  sa: IkeSa,
  child: ChildSa,
  /** Keep the inbound SA a little longer for packets in flight: the caller deletes it later. */
  lingerInbound?: (id: SaId) => void,
): void {
  const ignore = (what: string) => (error?: string) => {
    if (error) ctx.log('debug', 'kernel', `${what} during CHILD_SA removal: ${error}`, sa);
  };
  if (child.policiesInstalled) {
    for (const p of policies(sa, child, false))
      ctx.kernel({ op: 'delPolicy', policy: p }, ignore(`del ${p.direction} policy`));
    child.policiesInstalled = false;
  }
  if (child.installedIn) {
    const id: SaId = { ...child.installedIn, spi: child.spiIn, protocol: 'esp' };
    if (lingerInbound) lingerInbound(id);
    else ctx.kernel({ op: 'delSa', id }, ignore('del inbound SA'));
    child.installedIn = undefined;
  }
  child.pendingOutbound = undefined;
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
