// `npm run bench`: every benchmark of the project, ratios against strongSwan measured in the same run.
import { runCryptoBench } from './crypto-bench.js';
import { runRekeyLatency } from './rekey-latency.js';
import { runMemory, runSetupRate } from './setup-rate.js';

const started = Date.now();
console.log(`ikegw benchmarks — ${new Date().toISOString()}, node ${process.version}\n`);
console.log('== crypto floor ==');
for (const l of await runCryptoBench()) console.log(l);
console.log('\n== IKE set-up rate (issue: IKEv2 engine) ==');
for (const l of await runSetupRate({ count: Number(process.env.BENCH_COUNT ?? 2000) })) console.log(l);
console.log('\n== lifecycle (issue: tunnel lifecycle) ==');
for (const l of await runRekeyLatency()) console.log(l);
for (const l of await runMemory(Number(process.env.BENCH_MEMORY_COUNT ?? 10_000))) console.log(l);
console.log(`\nbench finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
