// `npm run bench`: every benchmark of the project, ratios against strongSwan measured in the same
// run. BENCH_ONLY=crypto,setup,loadtester,certs,memory,idle,lifecycle,trap,userspace,kernel picks sections.
import { runCryptoBench } from './crypto-bench.js';
import { runIdleBench } from './idle.js';
import { runKernelPathBench } from './kernel-path.js';
import { runLoadTester, runLoadTesterCerts, runLoadTesterMemory } from './loadtester.js';
import { runRekeyLatency } from './rekey-latency.js';
import { runMemory, runSetupRate } from './setup-rate.js';
import { runTrapLatency } from './trap-latency.js';
import { runUserspaceEspBench } from './userspace-esp.js';

const only = process.env.BENCH_ONLY?.split(',');
const want = (s: string) => !only || only.includes(s);
const started = Date.now();
console.log(`ikegw benchmarks — ${new Date().toISOString()}, node ${process.version}\n`);
if (want('crypto')) {
  console.log('== crypto floor ==');
  for (const l of await runCryptoBench()) console.log(l);
}
if (want('setup')) {
  console.log('\n== IKE set-up rate (issue: IKEv2 engine) ==');
  for (const l of await runSetupRate({ count: Number(process.env.BENCH_COUNT ?? 2000) })) console.log(l);
}
if (want('loadtester')) {
  console.log("\n== responders under strongSwan's load-tester (issue: efficiency) ==");
  await runLoadTester(); // prints its lines as they come
}
if (want('certs')) {
  console.log(
    "\n== certificates vs PSK under strongSwan's load-tester (issue: certificate authentication) ==",
  );
  await runLoadTesterCerts(); // prints its lines as they come
}
if (want('memory')) {
  console.log("\n== memory per SA at 2k and 10k under strongSwan's load-tester (issue: efficiency) ==");
  await runLoadTesterMemory(); // prints its lines as they come
}
if (want('idle')) {
  console.log('\n== memory at rest (issue: efficiency) ==');
  await runIdleBench(); // prints its lines as they come
}
if (want('lifecycle')) {
  console.log('\n== lifecycle (issue: tunnel lifecycle) ==');
  for (const l of await runRekeyLatency()) console.log(l);
  for (const l of await runMemory(Number(process.env.BENCH_MEMORY_COUNT ?? 10_000))) console.log(l);
}
if (want('trap')) {
  console.log('\n== trap to traffic, initiator side (issue: efficiency) ==');
  for (const l of await runTrapLatency()) console.log(l);
}
if (want('userspace')) {
  console.log('\n== userspace ESP data path (issue: data path) ==');
  for (const l of await runUserspaceEspBench()) console.log(l);
}
if (want('kernel')) {
  console.log('\n== kernel XFRM data path, in the kernel VM (issue: data path) ==');
  for (const l of await runKernelPathBench()) console.log(l);
}
console.log(`\nbench finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
