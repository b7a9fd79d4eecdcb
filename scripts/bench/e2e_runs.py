"""Issue 14's figures with their spread: runs `cargo bench --bench e2e -- LINES` RUNS times (each
run measures every part on the same object: bare decompression, e2e on the gzip and the plain
object, `parse`) and prints, per figure, every run's value and min-max. The bench takes the
Lambda's settings and BENCH_PARTS from the environment.
usage: python3 scripts/bench/e2e_runs.py [LINES] [RUNS]  (from the repository root;
default 5000000 lines, 3 runs). Ends with one JSON line holding every run's report."""
import json
import subprocess
import sys

lines = sys.argv[1] if len(sys.argv) > 1 else "5000000"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
reports = []
for i in range(runs):
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "e2e", "--", lines],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(next(l for l in out.splitlines() if l.startswith("{")))
    reports.append(report)
    print(f"run {i + 1}: load average at start {report['loadavg_at_start']}", flush=True)


def row(label, values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return
    each = "  ".join(fmt.format(v) for v in values)
    print(f"{label:<34} {each}   min-max {fmt.format(min(values))}-{fmt.format(max(values))}")


first = reports[0]
print(f"{lines} lines, {first['text_bytes'] / 1e6:.1f} MB of text, {first['gzip_bytes'] / 1e6:.1f} MB gzip, "
      f"{first['cores']} cores, {runs} runs")
for name in first["parts"]:
    parts = [r["parts"].get(name, {}) for r in reports]
    row(f"{name} MB/s", [p.get("mb_per_s") for p in parts], "{:.1f}")
    row(f"{name} CPU s/GB", [p.get("cpu_s_per_gb") for p in parts], "{:.2f}")
    row(f"{name} CPU s/GB with endpoint", [p.get("cpu_s_per_gb_with_endpoint") for p in parts], "{:.2f}")
    row(f"{name} peak RSS MB", [p.get("peak_rss_mb") for p in parts], "{:.1f}")
    row(f"{name} peak heap MB", [p.get("peak_heap_mb") for p in parts], "{:.1f}")
for key in first["ratios"]:
    row(key, [r["ratios"].get(key) for r in reports], "{:.3f}")
print(json.dumps(reports))
