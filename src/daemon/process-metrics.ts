// The process metrics Prometheus clients export by convention (the names of the Go client's
// process collector, which prom-client also uses), prefixed, all read at scrape time: nothing runs
// between scrapes (no event-loop monitor timer, no GC observer).
import { readdirSync, readFileSync } from 'node:fs';
import { Counter, Gauge, type Registry } from './prom.js';

function procStatus(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const m = /^(Vm\w+):\s+(\d+) kB/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]) * 1024);
    }
  } catch {
    // not Linux: the memory series fall back to process.memoryUsage()
  }
  return out;
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const r = [registry];
  const startS = Math.round(Date.now() / 1000 - process.uptime());
  const cpu = (name: string, help: string, pick: (u: NodeJS.CpuUsage) => number) => {
    const c: Counter = new Counter({
      name: prefix + name,
      help,
      registers: r,
      collect: () => {
        c.reset();
        c.inc(pick(process.cpuUsage()) / 1e6);
      },
    });
  };
  cpu('process_cpu_user_seconds_total', 'User CPU time spent in seconds', (u) => u.user);
  cpu('process_cpu_system_seconds_total', 'System CPU time spent in seconds', (u) => u.system);
  cpu(
    'process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds',
    (u) => u.user + u.system,
  );
  new Gauge({
    name: `${prefix}process_start_time_seconds`,
    help: 'Start time of the process since unix epoch in seconds',
    registers: r,
  }).set(startS);
  let status = new Map<string, number>();
  const mem = (name: string, help: string, field: string, fallback: () => number) => {
    const g: Gauge = new Gauge({
      name: prefix + name,
      help,
      registers: r,
      collect: () => {
        if (field === 'VmRSS') status = procStatus(); // the first of the three reads the file
        g.set(status.get(field) ?? fallback());
      },
    });
  };
  mem(
    'process_resident_memory_bytes',
    'Resident memory size in bytes',
    'VmRSS',
    () => process.memoryUsage().rss,
  );
  mem('process_virtual_memory_bytes', 'Virtual memory size in bytes', 'VmSize', () => 0);
  mem('process_heap_bytes', 'Process heap size in bytes', 'VmData', () => process.memoryUsage().heapTotal);
  const fds: Gauge = new Gauge({
    name: `${prefix}process_open_fds`,
    help: 'Number of open file descriptors',
    registers: r,
    collect: () => {
      try {
        fds.set(readdirSync('/proc/self/fd').length - 1); // less the one readdir opened
      } catch {
        fds.reset();
      }
    },
  });
  const max = maxFds();
  if (max !== undefined)
    new Gauge({
      name: `${prefix}process_max_fds`,
      help: 'Maximum number of open file descriptors',
      registers: r,
    }).set(max);
  const heap = (name: string, help: string, pick: (m: NodeJS.MemoryUsage) => number) => {
    const g: Gauge = new Gauge({
      name: prefix + name,
      help,
      registers: r,
      collect: () => g.set(pick(process.memoryUsage())),
    });
  };
  heap('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes', (m) => m.heapTotal);
  heap('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes', (m) => m.heapUsed);
  heap('nodejs_external_memory_bytes', 'Node.js external memory size in bytes', (m) => m.external);
  const lag: Gauge = new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'Lag of the event loop in seconds (time a callback queued at scrape time waits)',
    registers: r,
    collect: () =>
      new Promise<void>((done) => {
        const t0 = process.hrtime.bigint();
        setImmediate(() => {
          lag.set(Number(process.hrtime.bigint() - t0) / 1e9);
          done();
        });
      }),
  });
  const resources: Gauge = new Gauge({
    name: `${prefix}nodejs_active_resources_total`,
    help: 'Number of active resources keeping the event loop alive (sockets, timers, ...)',
    registers: r,
    collect: () => resources.set(process.getActiveResourcesInfo().length),
  });
  const [major, minor, patch] = process.versions.node.split('.');
  new Gauge<'version' | 'major' | 'minor' | 'patch'>({
    name: `${prefix}nodejs_version_info`,
    help: 'Node.js version info',
    labelNames: ['version', 'major', 'minor', 'patch'],
    registers: r,
  }).set({ version: process.version, major: major ?? '', minor: minor ?? '', patch: patch ?? '' }, 1);
}
