// strongSwan's time values, for the configuration file (src/daemon/config.ts re-exports it) and the
// CLI's --timeout.

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** strongSwan time values: "30s", "5m", "4h", "1d" (also "500ms"); a plain number means seconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) return undefined;
  const secs = Math.round(Number(m[1]) * UNIT_SECONDS[m[2] ?? 's']! * 1000) / 1000;
  return Number.isFinite(secs) ? secs : undefined; // 400 digits are a number, but not a duration
}
