"""Issue 7's memory target: peak RSS of the end-to-end bench for a 1.6M-line gzip object against
a 40k-line one. One run's peak depends on how many puts happened to be in flight together, so
each size runs RUNS times (alternating) and the medians are compared.
The bench takes its configuration from the environment (MAX_CONCURRENT_PUTS=4 ...); this script
runs only its e2e-gz part (BENCH_PARTS=e2e-gz: no decompression or `parse` references), with
heap counting on (BENCH_HEAP=1).
usage: python3 scripts/bench/rss.py [RUNS]  (from the repository root)"""
import os
import re
import statistics
import subprocess
import sys

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
sizes = [40_000, 1_600_000]
peaks = {n: [] for n in sizes}
heaps = {n: [] for n in sizes}
for i in range(runs):
    for n in sizes:
        out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "e2e", "--", str(n)],
                             check=True, capture_output=True, text=True,
                             env=dict(os.environ, BENCH_PARTS="e2e-gz", BENCH_HEAP="1")).stdout
        line = next(l for l in out.splitlines() if l.startswith("e2e lines="))
        peak = float(re.search(r"peak_rss_mb=([0-9.]+)", line).group(1))
        heap = float(re.search(r"peak_heap_mb=([0-9.]+)", line).group(1))
        peaks[n].append(peak)
        heaps[n].append(heap)
        print(f"run {i}: {n:>9} lines  peak RSS {peak:6.1f} MB  peak heap {heap:6.1f} MB", flush=True)
small, big = (statistics.median(peaks[n]) for n in sizes)
print(f"median peak RSS: {small:.1f} MB for 40k lines, {big:.1f} MB for 1.6M lines: "
      f"x{big / small:.2f} (target <= 1.5), {big:.1f} MB (target <= 128)")
hs, hb = (statistics.median(heaps[n]) for n in sizes)
print(f"median peak heap: {hs:.1f} MB for 40k lines, {hb:.1f} MB for 1.6M lines: x{hb / hs:.2f}")
print(f"spread: 40k {min(peaks[sizes[0]]):.1f}-{max(peaks[sizes[0]]):.1f} MB, "
      f"1.6M {min(peaks[sizes[1]]):.1f}-{max(peaks[sizes[1]]):.1f} MB")
