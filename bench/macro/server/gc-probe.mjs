// Loaded into `switchboard serve` by the server benchmark's memory phase only
// (node --expose-gc --import bench/macro/server/gc-probe.mjs bin/switchboard.js serve ...).
// It does nothing until SIGUSR2: then two full garbage collections, and one line on stderr with
// the V8 heap in use, so that the benchmark reads the memory the server retains rather than
// garbage not yet collected. Neither Node.js nor Switchboard uses SIGUSR2.
import process from 'node:process';
import v8 from 'node:v8';

process.on('SIGUSR2', () => {
  const gc = globalThis.gc;
  if (typeof gc === 'function') {
    gc();
    gc();
  }
  const heap = v8.getHeapStatistics();
  process.stderr.write(
    `sb-bench-heap ${JSON.stringify({ usedHeap: heap.used_heap_size, totalHeap: heap.total_heap_size, gc: typeof gc === 'function' })}\n`,
  );
});
