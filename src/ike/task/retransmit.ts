// Retransmission timing (RFC 7296 §2.1), strongSwan's schedule: timeout * base^attempt,
// optionally shortened by up to `jitter` and capped by `limitMs`.
import type { RetransmitConfig } from '../config.js';

/** Delay before retransmission number `attempt` (0 = wait after the first send). */
export function delayMs(cfg: RetransmitConfig, attempt: number, rand01: number): number {
  let d = cfg.timeoutMs * cfg.base ** attempt;
  if (cfg.limitMs > 0) d = Math.min(d, cfg.limitMs);
  if (cfg.jitter > 0) d -= d * cfg.jitter * rand01;
  return Math.round(d);
}
