"""Writes a deterministic nginx `combined` access log of about SIZE_MB megabytes to stdout.

usage: gen_access.py SIZE_MB [timing]   ('timing' adds $request_time and $upstream_* fields)"""
import random
import sys
from datetime import datetime, timedelta, timezone

size = int(sys.argv[1]) * 1_000_000
timing = len(sys.argv) > 2 and sys.argv[2] == "timing"
rng = random.Random(42)
paths = ["/", "/index.html", "/api/v1/orders", "/api/v1/users/42?expand=true", "/static/app.3f9a1c.js",
         "/healthz", "/search?q=caf%C3%A9+au+lait&page=2", "/images/logo.png", "/favicon.ico", "/wp-login.php"]
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
          "curl/8.5.0", "ELB-HealthChecker/2.0", "-"]
referers = ["-", "https://www.example.com/", "https://www.google.com/search?q=nginx"]
start = datetime.now(timezone.utc) - timedelta(hours=6)
out = sys.stdout
written, i, buf = 0, 0, []
while written < size:
    t = start + timedelta(milliseconds=i * 7)
    line = (f'{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - '
            f'[{t:%d/%b/%Y:%H:%M:%S} +0000] "{rng.choice(["GET", "GET", "GET", "POST"])} {rng.choice(paths)} HTTP/1.1" '
            f'{rng.choice([200, 200, 200, 304, 404, 502])} {rng.randint(0, 50000)} "{rng.choice(referers)}" "{rng.choice(agents)}"')
    if timing:
        line += f' {rng.randint(0, 2000) / 1000:.3f} "{rng.randint(1, 500) / 1000:.3f}" 10.0.4.{rng.randint(1, 20)}:8080'
    buf.append(line)
    written += len(line) + 1
    i += 1
    if len(buf) >= 10_000:
        out.write("\n".join(buf) + "\n")
        buf = []
if buf:
    out.write("\n".join(buf) + "\n")
