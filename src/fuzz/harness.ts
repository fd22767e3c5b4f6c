// The fuzzing loop shared by every target: seeded generation, execution, crash detection (an
// exception out of the code under test, or a violated invariant), deduplication by signature,
// reproduction on a fresh instance, ddmin minimization, and the crash file.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { minimize } from './minimize.js';
import { hashString, Rng } from './rng.js';

/** A property of the code under test that an input broke (as opposed to an exception it threw). */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
  constructor(
    /** Stable kind of violation: what the crash is deduplicated by. */
    readonly kind: string,
    detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

export function invariant(cond: unknown, kind: string, detail: () => string = () => ''): asserts cond {
  if (!cond) throw new InvariantError(kind, detail());
}

/** An error that carries its own deduplication signature (e.g. an exception logged by the engine). */
export class ReportedError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly signature: string,
  ) {
    super(message);
  }
}

/** One instance of a target: its code under test set up (SAs established, parsers ready...). */
export interface FuzzInstance {
  /** The next input, deterministic in `rng`. Inputs are self-contained byte strings. */
  generate(rng: Rng): Uint8Array;
  /** Runs one input; throws on a crash (any exception, or InvariantError). */
  run(input: Uint8Array): void | Promise<void>;
  /**
   * Housekeeping before input `j` of an episode (j >= 1; time passing): not part of any input, and
   * deterministic in `j` so that a replayed episode sees the same.
   */
  between?(j: number): void | Promise<void>;
  /**
   * Back to a clean state (tear down what the inputs built, set it up again) and check that nothing
   * was left behind. Called every `checkpointEvery` inputs; an episode ends there.
   */
  checkpoint?(): void | Promise<void>;
  /** Counters worth printing (how deep the inputs got). */
  stats?(): Record<string, number>;
  close?(): void | Promise<void>;
}

export interface FuzzTarget {
  name: string;
  about: string;
  /** run() leaves nothing behind that changes a later run: minimization may reuse one instance. */
  stateless: boolean;
  /** A fresh instance; two fresh instances behave identically. */
  create(): FuzzInstance | Promise<FuzzInstance>;
  /** Inputs per episode (between checkpoints), for targets with a checkpoint. */
  checkpointEvery?: number;
}

export interface CrashReport {
  target: string;
  signature: string;
  error: string;
  iteration: number;
  input: Uint8Array;
  /** What the crash file holds: one input, or an episode (encodeSequence). */
  minimized: Uint8Array;
  /** 'input': the input crashes a fresh instance on its own; 'episode': with the inputs before it. */
  reproducible: 'input' | 'episode' | false;
  duplicates: number;
  file?: string;
}

export interface FuzzOptions {
  count: number;
  seed: number;
  /** Where crash files go; undefined = do not write. */
  outDir?: string;
  minimize?: boolean;
  /** Distinct crashes after which the run stops. */
  maxCrashes?: number;
  log?: (line: string) => void;
  /** Progress line interval. */
  progressMs?: number;
}

export interface FuzzResult {
  target: string;
  count: number;
  ms: number;
  perSecond: number;
  crashes: CrashReport[];
  stats: Record<string, number>;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** Normalized first line: numbers, hex and quoted strings do not split one bug into many. */
export function normalizeMessage(msg: string): string {
  return firstLine(msg)
    .replace(/"[^"]*"/g, 'S')
    .replace(/: [^\s:]+$/, ': X')
    .replace(/\b(0x)?[0-9a-f]{6,}\b/gi, 'H')
    .replace(/\d+/g, 'N')
    .slice(0, 160);
}

/** The first stack frame in the code under test (src/ or dist/, not the fuzzer), as file:line. */
export function codeFrame(stack: string | undefined): string {
  for (const line of (stack ?? '').split('\n').slice(1)) {
    const m =
      /\((?:file:\/\/)?([^()]*\/(?:src|dist)\/[^():]+):(\d+):\d+\)|at (?:file:\/\/)?([^ ()]*\/(?:src|dist)\/[^():]+):(\d+):\d+/.exec(
        line,
      );
    if (!m || line.includes('node_modules')) continue;
    const file = m[1] ?? m[3] ?? '';
    if (/\/(src|dist)\/fuzz\//.test(file)) continue;
    const rel = file.replace(/^.*\/((?:src|dist)\/)/, '$1');
    return `${rel}:${m[2] ?? m[4]}`;
  }
  return '';
}

export function signatureOf(e: unknown): string {
  if (e instanceof ReportedError) return e.signature;
  if (e instanceof InvariantError) return `InvariantError: ${e.kind}`;
  if (e instanceof Error) return `${e.name}: ${normalizeMessage(e.message)} @ ${codeFrame(e.stack)}`;
  return `thrown ${typeof e}: ${normalizeMessage(String(e))}`;
}

function describe(e: unknown): string {
  if (e instanceof Error)
    return `${e.name}: ${e.message}${e.stack ? `\n${e.stack.split('\n').slice(1, 8).join('\n')}` : ''}`;
  return String(e);
}

async function attempt(f: () => void | Promise<void>): Promise<unknown> {
  try {
    const r = f();
    if (r) await r;
    return undefined;
  } catch (e) {
    return e ?? new Error('thrown undefined');
  }
}

// A crash file holds one input, or an episode: inputs run one after the other on a fresh
// instance (with the time passing between them), then a checkpoint.
const SEQ_MAGIC = Buffer.from('FUZZSEQ1');

export function encodeSequence(inputs: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [SEQ_MAGIC];
  for (const x of inputs) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(x.length);
    parts.push(len, x);
  }
  return Buffer.concat(parts);
}

export function decodeSequence(b: Uint8Array): Uint8Array[] | undefined {
  if (b.length < SEQ_MAGIC.length || !Buffer.from(b.subarray(0, SEQ_MAGIC.length)).equals(SEQ_MAGIC))
    return undefined;
  const out: Uint8Array[] = [];
  let at = SEQ_MAGIC.length;
  while (at + 4 <= b.length) {
    const len = Buffer.from(b.subarray(at, at + 4)).readUInt32BE(0);
    out.push(b.slice(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

/** Runs an episode on a fresh instance; the first error, or undefined. */
export async function replaySequence(
  target: FuzzTarget,
  inputs: readonly Uint8Array[],
  withCheckpoint: boolean,
): Promise<unknown> {
  let inst: FuzzInstance;
  try {
    inst = await target.create();
  } catch (e) {
    return e;
  }
  try {
    for (let j = 0; j < inputs.length; j++) {
      if (j > 0 && inst.between) {
        const e = await attempt(() => inst.between!(j));
        if (e !== undefined) return e;
      }
      const e = await attempt(() => inst.run(inputs[j]!));
      if (e !== undefined) return e;
    }
    if (withCheckpoint && inst.checkpoint) return await attempt(() => inst.checkpoint!());
    return undefined;
  } finally {
    await inst.close?.();
  }
}

/** Runs a crash file (one input, or an episode) on a fresh instance of `target`. */
export async function replay(target: FuzzTarget, file: Uint8Array): Promise<unknown> {
  const seq = decodeSequence(file);
  return seq ? replaySequence(target, seq, true) : replaySequence(target, [file], false);
}

export function crashFileName(target: string, input: Uint8Array): string {
  return `${target}-${createHash('sha256').update(input).digest('hex').slice(0, 12)}.bin`;
}

function seedFor(target: string, seed: number): number {
  return (seed ^ hashString(target)) >>> 0;
}

export async function fuzzTarget(target: FuzzTarget, o: FuzzOptions): Promise<FuzzResult> {
  // Deep recursion (YAML, nested JSON) hides the frame in our code beyond the default 10.
  Error.stackTraceLimit = Math.max(Error.stackTraceLimit, 50);
  const log = o.log ?? (() => undefined);
  const rng = new Rng(seedFor(target.name, o.seed));
  const crashes = new Map<string, CrashReport>();
  const maxCrashes = o.maxCrashes ?? 20;
  let inst = await target.create();
  /** The inputs since the instance was fresh or last checkpointed. */
  let episode: Uint8Array[] = [];
  const started = Date.now();
  let lastProgress = started;
  let done = 0;
  const totals: Record<string, number> = {};
  const collect = (x: FuzzInstance): void => {
    for (const [k, v] of Object.entries(x.stats?.() ?? {})) totals[k] = (totals[k] ?? 0) + v;
  };
  const crashed = async (err: unknown, at: number, atCheckpoint: boolean): Promise<boolean> => {
    const sig = signatureOf(err);
    const seen = crashes.get(sig);
    if (seen) seen.duplicates++;
    else {
      log(`${target.name}: crash at input ${at}: ${firstLine(describe(err))}`);
      const report = await analyse(target, at, episode, atCheckpoint, err, sig, o);
      crashes.set(sig, report);
      if (report.file) log(`${target.name}: minimized (${report.minimized.length} bytes) -> ${report.file}`);
    }
    // A crashed instance may be half-way through something: carry on with a fresh one.
    if (!target.stateless || atCheckpoint) {
      collect(inst);
      await inst.close?.();
      inst = await target.create();
    }
    episode = [];
    if (crashes.size >= maxCrashes) {
      log(`${target.name}: ${crashes.size} distinct crashes, stopping`);
      return true;
    }
    return false;
  };
  for (let i = 0; i < o.count; i++) {
    if (target.checkpointEvery && inst.checkpoint && episode.length >= target.checkpointEvery) {
      const e = await attempt(() => inst.checkpoint!());
      if (e !== undefined && (await crashed(e, i - 1, true))) break;
      episode = [];
    }
    if (episode.length > 0 && inst.between) {
      const e = await attempt(() => inst.between!(episode.length));
      if (e !== undefined && (await crashed(e, i - 1, true))) break;
    }
    const input = inst.generate(rng);
    if (!target.stateless) episode.push(input);
    let err: unknown;
    try {
      const r = inst.run(input);
      if (r) await r;
    } catch (e) {
      err = e ?? new Error('thrown undefined');
    }
    done++;
    if (err !== undefined) {
      if (target.stateless) episode = [input];
      if (await crashed(err, i, false)) break;
    }
    const now = Date.now();
    if (o.progressMs !== undefined && now - lastProgress >= o.progressMs) {
      lastProgress = now;
      const rate = Math.round((done * 1000) / Math.max(1, now - started));
      log(`${target.name}: ${done}/${o.count} inputs, ${rate}/s, ${crashes.size} crashes`);
    }
  }
  const ms = Date.now() - started;
  collect(inst);
  await inst.close?.();
  return {
    target: target.name,
    count: done,
    ms,
    perSecond: Math.round((done * 1000) / Math.max(1, ms)),
    crashes: [...crashes.values()],
    stats: totals,
  };
}

async function analyse(
  target: FuzzTarget,
  iteration: number,
  episode: Uint8Array[],
  atCheckpoint: boolean,
  err: unknown,
  sig: string,
  o: FuzzOptions,
): Promise<CrashReport> {
  const same = (e: unknown): boolean => e !== undefined && signatureOf(e) === sig;
  const last = episode[episode.length - 1] ?? new Uint8Array(0);
  // Stateless targets minimize on one instance of their own (its counters stay out of the stats).
  const scratch = target.stateless ? await target.create() : undefined;
  const single = async (candidate: Uint8Array): Promise<boolean> =>
    same(
      scratch
        ? await attempt(() => scratch.run(candidate))
        : await replaySequence(target, [candidate], false),
    );
  const sequence = async (candidate: Uint8Array[]): Promise<boolean> =>
    same(await replaySequence(target, candidate, atCheckpoint));
  const minimizing = o.minimize !== false;
  let reproducible: CrashReport['reproducible'] = false;
  let minimized = atCheckpoint ? encodeSequence(episode) : last;
  if (!atCheckpoint && (await single(last))) {
    reproducible = 'input';
    if (minimizing) {
      const budget = target.stateless
        ? { maxRuns: 20_000, maxMs: 60_000 }
        : { maxRuns: 3_000, maxMs: 120_000 };
      minimized = (await minimize(last, single, budget)).input;
    }
  } else if (episode.length > 0 && (await sequence(episode))) {
    reproducible = 'episode';
    let seq = episode;
    if (minimizing) seq = await minimizeList(seq, sequence, 180_000);
    minimized = encodeSequence(seq);
  }
  await scratch?.close?.();
  const report: CrashReport = {
    target: target.name,
    signature: sig,
    error: describe(err),
    iteration,
    input: last,
    minimized,
    reproducible,
    duplicates: 0,
  };
  if (o.outDir !== undefined) {
    mkdirSync(o.outDir, { recursive: true });
    const file = join(o.outDir, crashFileName(target.name, minimized));
    writeFileSync(file, minimized);
    report.file = file;
  }
  return report;
}

/** ddmin over the inputs of an episode (removing whole inputs), within a time budget. */
async function minimizeList(
  list: Uint8Array[],
  fails: (candidate: Uint8Array[]) => Promise<boolean>,
  maxMs: number,
): Promise<Uint8Array[]> {
  const started = Date.now();
  let cur = list;
  let n = 2;
  while (cur.length >= 2 && Date.now() - started < maxMs) {
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let i = 0; i < n && Date.now() - started < maxMs; i++) {
      const candidate = [...cur.slice(0, i * chunk), ...cur.slice((i + 1) * chunk)];
      if (candidate.length === cur.length) break;
      if (await fails(candidate)) {
        cur = candidate;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (reduced) continue;
    if (n >= cur.length) break;
    n = Math.min(cur.length, n * 2);
  }
  return cur;
}
