import { describe, expect, it } from 'vitest';
import { registerProcessMetrics } from '../../../src/daemon/process-metrics.js';
import { Counter, Gauge, Histogram, Registry } from '../../../src/daemon/prom.js';

// One sample line of the text exposition format 0.0.4: name, optional {label="value",...}, value.
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? (NaN|[+-]Inf|-?[0-9.e+-]+)$/;

function checkFormat(text: string): void {
  expect(text.endsWith('\n')).toBe(true);
  const typed = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    const t = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      expect(typed.has(t[1]!), `one TYPE line for ${t[1]}`).toBe(false);
      typed.add(t[1]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    expect(line).toMatch(SAMPLE);
    const name = /^[^{ ]+/.exec(line)![0].replace(/_(bucket|sum|count)$/, '');
    expect(typed.has(name) || typed.has(/^[^{ ]+/.exec(line)![0]), `TYPE before ${line}`).toBe(true);
  }
}

describe('prom: the text exposition format', () => {
  it('counters, gauges and a histogram with labels, escaped, in declaration order', async () => {
    const reg = new Registry();
    const c = new Counter<'conn' | 'result'>({
      name: 'x_total',
      help: 'a \\ help\nline',
      labelNames: ['conn', 'result'],
      registers: [reg],
    });
    const g = new Gauge({ name: 'x_up', help: 'up', registers: [reg] });
    const h = new Histogram<'conn'>({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['conn'],
      buckets: [0.1, 1, 0.01],
      registers: [reg],
    });
    c.inc({ result: 'ok', conn: 'a"b\\c\nd' });
    c.inc({ conn: 'a"b\\c\nd', result: 'ok' }, 2);
    c.inc({ conn: 'x', result: 'fail' }, 0);
    g.set(1.5);
    g.dec(2);
    h.observe({ conn: 'x' }, 0.05);
    h.observe({ conn: 'x' }, 5);
    const text = await reg.metrics();
    expect(text).toBe(
      [
        '# HELP x_total a \\\\ help\\nline',
        '# TYPE x_total counter',
        'x_total{conn="a\\"b\\\\c\\nd",result="ok"} 3',
        'x_total{conn="x",result="fail"} 0',
        '# HELP x_up up',
        '# TYPE x_up gauge',
        'x_up -0.5',
        '# HELP x_seconds h',
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{le="0.01",conn="x"} 0',
        'x_seconds_bucket{le="0.1",conn="x"} 1',
        'x_seconds_bucket{le="1",conn="x"} 1',
        'x_seconds_bucket{le="+Inf",conn="x"} 2',
        'x_seconds_sum{conn="x"} 5.05',
        'x_seconds_count{conn="x"} 2',
        '',
      ].join('\n'),
    );
    checkFormat(text);
    expect(reg.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('reset drops labelled series and leaves unlabelled ones at 0; collect runs before each scrape', async () => {
    const reg = new Registry();
    let n = 0;
    const g: Gauge<'k'> = new Gauge<'k'>({
      name: 'g',
      help: 'g',
      labelNames: ['k'],
      registers: [reg],
      collect: async () => {
        g.reset();
        await Promise.resolve();
        g.set({ k: String(++n) }, n);
      },
    });
    const c = new Counter({ name: 'c_total', help: 'c', registers: [reg] });
    c.inc(4);
    c.reset();
    expect(await reg.metrics()).toContain(
      'g{k="1"} 1\n# HELP c_total c\n# TYPE c_total counter\nc_total 0\n',
    );
    const second = await reg.metrics();
    expect(second).toContain('g{k="2"} 2\n');
    expect(second).not.toContain('g{k="1"}');
  });

  it('refuses what Prometheus would refuse or misread', () => {
    const reg = new Registry();
    const c = new Counter<'a'>({ name: 'c_total', help: 'c', labelNames: ['a'], registers: [reg] });
    expect(() => c.inc({ a: 'x' }, -1)).toThrow(/cannot go down/);
    expect(() => c.inc({ b: 'x' } as never)).toThrow(/label "b" is not one of a/);
    expect(() => new Counter({ name: 'c_total', help: 'again', registers: [reg] })).toThrow(
      /registered already/,
    );
    expect(() => new Gauge({ name: 'bad-name', help: '' })).toThrow(/not valid/);
    expect(() => new Histogram({ name: 'h', help: '', labelNames: ['le'], buckets: [1] })).toThrow(
      /not valid/,
    );
    expect(() => new Gauge({ name: 'g', help: '' }).set(Number.NaN)).not.toThrow();
  });

  it('process metrics: the conventional names, read from this process at scrape time', async () => {
    const reg = new Registry();
    registerProcessMetrics(reg, 'p_');
    const text = await reg.metrics();
    checkFormat(text);
    const value = (name: string) => {
      const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
      expect(m, name).not.toBeNull();
      return Number(m![2]);
    };
    const rss = value('p_process_resident_memory_bytes');
    expect(Math.abs(rss - process.memoryUsage().rss)).toBeLessThan(64 * 1048576);
    expect(value('p_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('p_process_cpu_seconds_total')).toBeCloseTo(
      value('p_process_cpu_user_seconds_total') + value('p_process_cpu_system_seconds_total'),
      3,
    );
    expect(
      Math.abs(value('p_process_start_time_seconds') - (Date.now() / 1000 - process.uptime())),
    ).toBeLessThan(2);
    expect(value('p_process_open_fds')).toBeGreaterThan(2);
    expect(value('p_process_max_fds')).toBeGreaterThanOrEqual(value('p_process_open_fds'));
    expect(value('p_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(value('p_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(text).toContain(`p_nodejs_version_info{version="${process.version}",`);
  });
});
