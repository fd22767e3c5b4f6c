// Compiles src/ into a private directory for the processes the kernel tests start (`ikegw daemon`
// with `datapath: xfrm`, i.e. cli.js). Private, so that it never
// competes with anyone's `npm run build` in dist/; under node_modules/.cache so that the compiled
// files resolve this checkout's node_modules. Type errors elsewhere in the tree do not stop the
// emit (noEmitOnError: false); only missing output does.
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
export const BUILD_DIR = join(REPO, 'node_modules/.cache/ikgwx-kvm');
export const DRIVER = join(BUILD_DIR, 'dist/cli.js');

export async function buildDriver(): Promise<{ driver: string; ms: number; tscNote: string }> {
  const t0 = Date.now();
  mkdirSync(join(BUILD_DIR, 'dist'), { recursive: true });
  writeFileSync(
    join(BUILD_DIR, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../../tsconfig.build.json',
      compilerOptions: {
        outDir: './dist',
        rootDir: '../../../src',
        noEmit: false,
        noEmitOnError: false,
        sourceMap: false,
        incremental: true,
        tsBuildInfoFile: './tsbuildinfo',
      },
      include: ['../../../src'],
    }),
  );
  writeFileSync(join(BUILD_DIR, 'dist/package.json'), '{"type":"module"}\n');
  // dist/common/native.js loads ../../native/build/Release/ikegw_native.node (UDP_ENCAP on the NAT-T
  // socket, TUN): the checkout's addon, as for dist/
  const native = join(BUILD_DIR, 'native');
  if (!lstatSync(native, { throwIfNoEntry: false })) symlinkSync('../../../native', native);
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const note = await new Promise<string>((res) => {
    execFile(
      process.execPath,
      [tsc, '-p', join(BUILD_DIR, 'tsconfig.json')],
      { timeout: 180_000 },
      (err, stdout) =>
        res(
          err ? `tsc reported problems (emitted anyway): ${stdout.split('\n').slice(0, 5).join(' | ')}` : '',
        ),
    );
  });
  if (!existsSync(DRIVER)) throw new Error(`building ${DRIVER} failed: ${note}`);
  return { driver: DRIVER, ms: Date.now() - t0, tscNote: note };
}
