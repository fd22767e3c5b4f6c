// Preloaded into ikegw by the load-tester bench (BENCH_LT_ALLOC_PROFILE=dir): V8's sampling heap
// profiler with the objects later collected by minor and major GCs included — i.e. where the bytes
// a responder allocates per IKE_SA come from (what the GC then has to clear), which neither a heap
// snapshot nor `--heap-prof` (live objects only) shows. Loaded as
// `--import file:///…/alloc-profile.js?dir=/some/dir`; SIGUSR2 writes dir/alloc-<pid>.heapprofile
// (open it in Chrome DevTools, or sum selfSize by callFrame).
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = new URL(import.meta.url).searchParams.get('dir') ?? '.';
const session = new Session();
session.connect();
const post = (method: string, params: object = {}): Promise<unknown> =>
  new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
await post('HeapProfiler.enable');
await post('HeapProfiler.startSampling', {
  samplingInterval: 1024,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
process.on('SIGUSR2', () => {
  void post('HeapProfiler.stopSampling').then((r) => {
    const file = `${dir}/alloc-${process.pid}.heapprofile`;
    writeFileSync(`${file}.tmp`, JSON.stringify((r as { profile: unknown }).profile));
    renameSync(`${file}.tmp`, file);
  });
});
