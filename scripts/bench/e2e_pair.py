"""Compares two builds of the e2e bench (benches/e2e.rs): runs the OLD and the NEW bench binary in
turn RUNS times each on LINES lines (the order alternating), and prints each run's figures and
the paired ratios new/old of MB/s and CPU s/GB per part, with their medians.
usage: python3 scripts/bench/e2e_pair.py OLD_BENCH_BINARY NEW_BENCH_BINARY [LINES] [RUNS]
(a bench binary: `cargo bench --bench e2e --no-run` prints its path; build the old one in a
worktree of the old commit). BENCH_PARTS picks the parts (default e2e-gz,e2e-plain)."""
import json, subprocess, sys, os, statistics
old, new = sys.argv[1], sys.argv[2]
lines = sys.argv[3] if len(sys.argv) > 3 else "600000"
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 6
env = dict(os.environ, BENCH_PARTS=os.environ.get("BENCH_PARTS", "e2e-gz,e2e-plain"))
def run(b):
    out = subprocess.run([b, "--bench", lines], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(next(l for l in out.splitlines() if l.startswith("{")))
ratios = {}
for i in range(runs):
    pair = [run(old), run(new)] if i % 2 == 0 else list(reversed([run(new), run(old)]))
    for part in pair[0]["parts"]:
        o, n = pair[0]["parts"][part], pair[1]["parts"][part]
        for k in ("mb_per_s", "cpu_s_per_gb"):
            if o.get(k) and n.get(k):
                ratios.setdefault((part, k), []).append(n[k] / o[k])
                print(f"run {i+1} {part} {k}: old {o[k]:.2f} new {n[k]:.2f} ratio {n[k]/o[k]:.3f}", flush=True)
for (part, k), r in sorted(ratios.items()):
    print(f"{part} {k}: median ratio new/old {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, n={len(r)})")
