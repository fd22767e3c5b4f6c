// `npm run fuzz` — structure-aware, seeded fuzzing of ikegw's input parsers and protocol core.
//
//   node dist/fuzz/run.js [--target NAME[,NAME...]|all] [--count N] [--seed S]
//                         [--out DIR] [--no-minimize] [--max-crashes N]
//   node dist/fuzz/run.js --replay FILE...        (crash files: the target is the name's prefix)
//   node dist/fuzz/run.js --list
//
// --count is per target (default 10000). A run is deterministic in --seed: the same seed and count
// give the same inputs. On a crash (an exception out of the code under test, or a violated
// invariant) the input is minimized and written to test/fixtures/fuzz-crashes/<target>-<hash>.bin
// (or --out), and the exit code is 1.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { CRASH_DIR } from './corpus.js';
import { type FuzzResult, fuzzTarget, replay, signatureOf } from './harness.js';
import { TARGETS, targetByName, targetForFile } from './targets/index.js';

interface Args {
  targets: string[];
  count: number;
  seed: number;
  out: string;
  minimize: boolean;
  maxCrashes: number;
  replay: string[];
  list: boolean;
}

const USAGE = `usage: node dist/fuzz/run.js [--target NAME[,NAME...]|all] [--count N] [--seed S]
                            [--out DIR] [--no-minimize] [--max-crashes N]
       node dist/fuzz/run.js --replay FILE...
       node dist/fuzz/run.js --list`;

function parseArgs(argv: string[]): Args {
  const a: Args = {
    targets: TARGETS.map((t) => t.name),
    count: 10_000,
    seed: 1,
    out: CRASH_DIR(),
    minimize: true,
    maxCrashes: 20,
    replay: [],
    list: false,
  };
  const num = (v: string | undefined, what: string): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < 0)
      throw new Error(`${what} needs a non-negative integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--target': {
        const v = value() ?? '';
        a.targets = v === 'all' ? TARGETS.map((t) => t.name) : v.split(',').filter(Boolean);
        for (const t of a.targets) if (!targetByName(t)) throw new Error(`unknown target ${t}`);
        break;
      }
      case '--count':
        a.count = num(value(), '--count');
        break;
      case '--seed':
        a.seed = num(value(), '--seed');
        break;
      case '--out':
        a.out = value() ?? a.out;
        break;
      case '--no-minimize':
        a.minimize = false;
        break;
      case '--max-crashes':
        a.maxCrashes = Math.max(1, num(value(), '--max-crashes'));
        break;
      case '--replay':
        while (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) a.replay.push(argv[++i]!);
        break;
      case '--list':
        a.list = true;
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return a;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

async function runReplay(files: string[]): Promise<number> {
  let failed = 0;
  for (const f of files) {
    const t = targetForFile(basename(f));
    if (!t) {
      console.log(`${f}: no target for this file name (expected <target>-<hash>.bin)`);
      failed++;
      continue;
    }
    const err = await replay(t, new Uint8Array(readFileSync(f)));
    if (err === undefined) console.log(`${f}: ${t.name}: ok`);
    else {
      failed++;
      console.log(`${f}: ${t.name}: CRASH ${signatureOf(err)}`);
      console.log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    }
  }
  return failed ? 1 : 0;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.list) {
    for (const t of TARGETS) console.log(`${t.name.padEnd(12)} ${t.about}`);
    return 0;
  }
  if (args.replay.length) return runReplay(args.replay);
  const results: FuzzResult[] = [];
  for (const name of args.targets) {
    const t = targetByName(name)!;
    console.log(`${name}: fuzzing ${fmt(args.count)} inputs, seed ${args.seed}`);
    const r = await fuzzTarget(t, {
      count: args.count,
      seed: args.seed,
      outDir: args.out,
      minimize: args.minimize,
      maxCrashes: args.maxCrashes,
      progressMs: 30_000,
      log: (l) => console.log(l),
    });
    results.push(r);
    const extra = Object.entries(r.stats)
      .map(([k, v]) => `${k}=${fmt(v)}`)
      .join(' ');
    console.log(
      `${name}: ${fmt(r.count)} inputs in ${(r.ms / 1000).toFixed(1)} s (${fmt(r.perSecond)} inputs/s), ${r.crashes.length} crashes${extra ? ` [${extra}]` : ''}`,
    );
    for (const c of r.crashes) {
      console.log(`  CRASH ${c.signature}`);
      console.log(
        `    first at input ${c.iteration}, ${c.duplicates} more like it; ${c.reproducible === 'input' ? 'the input reproduces it alone' : c.reproducible === 'episode' ? 'reproduces with the inputs before it (the file holds that episode)' : 'does NOT reproduce on a fresh instance'}`,
      );
      console.log(`    ${c.error.split('\n').slice(0, 4).join('\n    ')}`);
      if (c.file) console.log(`    input (${c.minimized.length} bytes): ${c.file}`);
    }
  }
  const total = results.reduce((n, r) => n + r.count, 0);
  const crashes = results.reduce((n, r) => n + r.crashes.length, 0);
  if (results.length > 1) {
    console.log('\ntarget        inputs        inputs/s   crashes');
    for (const r of results)
      console.log(
        `${r.target.padEnd(12)} ${fmt(r.count).padStart(12)} ${fmt(r.perSecond).padStart(12)} ${String(r.crashes.length).padStart(8)}`,
      );
    console.log(
      `${'total'.padEnd(12)} ${fmt(total).padStart(12)} ${''.padStart(12)} ${String(crashes).padStart(8)}`,
    );
  }
  return crashes > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(2);
  },
);
