// A bounded run of every fuzz target (npm run fuzz runs them at scale): a few thousand seeded
// inputs each must give no crash — no exception out of the code under test, no violated
// invariant. Plus the harness itself: a planted crash is found, minimized, written and replayed.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FuzzTarget, fuzzTarget, InvariantError, replay, signatureOf } from '../../src/fuzz/harness.js';
import { Rng } from '../../src/fuzz/rng.js';
import { TARGETS, targetByName } from '../../src/fuzz/targets/index.js';

const SEED = 20261206;
const COUNTS: Record<string, number> = {
  'ike-decode': 4000,
  engine: 1500,
  'esp-input': 4000,
  'xfrm-decode': 4000,
  control: 2000,
  config: 1000,
};

describe('fuzz targets, bounded', () => {
  it('every target has a bounded run here', () => {
    expect(TARGETS.map((t) => t.name).sort()).toEqual(Object.keys(COUNTS).sort());
  });

  for (const [name, count] of Object.entries(COUNTS)) {
    it(`${name}: ${count} inputs without a crash`, { timeout: 60_000 }, async () => {
      const r = await fuzzTarget(targetByName(name)!, { count, seed: SEED, minimize: false, maxCrashes: 1 });
      expect(r.crashes.map((c) => `${c.signature}\n${c.error}`)).toEqual([]);
      expect(r.count).toBe(count);
    });
  }
});

describe('fuzz harness', () => {
  // Crashes when the input holds 0x42 and 0x43, in that order: the minimized input is [0x42, 0x43].
  const planted: FuzzTarget = {
    name: 'planted',
    about: 'test',
    stateless: true,
    create: () => ({
      generate: (rng: Rng) => rng.bytes(1 + rng.int(64)),
      run(input: Uint8Array) {
        const i = input.indexOf(0x42);
        if (i >= 0 && input.indexOf(0x43, i) > i)
          throw new InvariantError('planted', `${input.length} bytes`);
      },
    }),
  };

  it('finds, deduplicates, minimizes and writes a crash that replays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ikegw-fuzz-'));
    try {
      const r = await fuzzTarget(planted, { count: 3000, seed: 1, outDir: dir });
      expect(r.crashes).toHaveLength(1);
      const c = r.crashes[0]!;
      expect(c.signature).toBe('InvariantError: planted');
      expect(c.duplicates).toBeGreaterThan(0);
      expect(c.reproducible).toBe('input');
      expect([...c.minimized]).toEqual([0x42, 0x43]);
      const files = readdirSync(dir);
      expect(files).toEqual([expect.stringMatching(/^planted-[0-9a-f]{12}\.bin$/)]);
      const err = await replay(planted, new Uint8Array(readFileSync(join(dir, files[0]!))));
      expect(signatureOf(err)).toBe('InvariantError: planted');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is deterministic in the seed', async () => {
    const inputs = async (seed: number) => {
      const inst = await targetByName('ike-decode')!.create();
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => Buffer.from(inst.generate(rng)).toString('hex'));
    };
    expect(await inputs(7)).toEqual(await inputs(7));
    expect(await inputs(7)).not.toEqual(await inputs(8));
  });
});
