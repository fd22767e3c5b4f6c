// The fuzz targets, in the order `--target all` runs them.
import type { FuzzTarget } from '../harness.js';
import { configTarget } from './config.js';
import { controlTarget } from './control.js';
import { engineTarget } from './engine.js';
import { espInputTarget } from './esp-input.js';
import { ikeDecodeTarget } from './ike-decode.js';
import { xfrmDecodeTarget } from './xfrm-decode.js';

export const TARGETS: readonly FuzzTarget[] = [
  ikeDecodeTarget,
  engineTarget,
  espInputTarget,
  xfrmDecodeTarget,
  controlTarget,
  configTarget,
];

export function targetByName(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}

/** The target a crash file belongs to: `<target>-<hash>.bin`. */
export function targetForFile(file: string): FuzzTarget | undefined {
  const m = /^(.+)-[0-9a-f]{6,}\.bin$/.exec(file);
  return m ? targetByName(m[1]!) : undefined;
}
