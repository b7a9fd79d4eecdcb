"""Issue 7's parse-speed comparison on one file: `wc -l`, the Python baseline, and
`nginx-cloudwatch-forwarder parse --kind access` (release), each best of N runs, output to
/dev/null. usage: parse_speed.py BINARY FILE [RUNS]"""
import os
import subprocess
import sys
import time

binary, path = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
size = os.path.getsize(path)
here = os.path.dirname(os.path.abspath(__file__))


def best(cmd):
    times = []
    for _ in range(runs):
        with open(path, "rb") as inp, open(os.devnull, "wb") as out:
            t = time.perf_counter()
            subprocess.run(cmd, stdin=inp, stdout=out, check=True)
            times.append(time.perf_counter() - t)
    return min(times)


results = {
    "wc -l": best(["wc", "-l"]),
    "python re+strptime+json": best([sys.executable, os.path.join(here, "python_baseline.py")]),
    "nginx-cloudwatch-forwarder parse": best([binary, "parse", "--kind", "access"]),
}
for name, secs in results.items():
    print(f"{name:34s} {secs:8.3f} s  {size / secs / 1e6:9.1f} MB/s")
ours, py, wc = results["nginx-cloudwatch-forwarder parse"], results["python re+strptime+json"], results["wc -l"]
print(f"ours vs python: {py / ours:.1f}x faster (target >= 25x); ours vs wc -l: 1/{ours / wc:.1f} of its speed (target >= 1/12)")
