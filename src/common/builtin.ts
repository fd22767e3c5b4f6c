// Node's built-in modules as their CommonJS objects, for the few whose ESM import is expensive.
//
// `import { createServer } from 'node:http'` makes Node build the module's ESM namespace, which
// reads every export — among them the lazy getter `http.WebSocket`, which loads undici, http2,
// zlib, tls, worker_threads and more — none of which ikegw uses: +18 MiB RSS in a bare Node
// 24.22, 6.1 MiB in `ikegw daemon` at rest (84.1 -> 78.0 MiB after start, 5 s and a GC).
// `builtin('node:http')` returns the same object without touching the getters; types still come
// from `import type`.
import { createRequire } from 'node:module';

export const builtin = createRequire(import.meta.url);
