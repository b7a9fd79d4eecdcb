"""Demo driver for scripts/demo: moto server, sample uploads, replay, backfill, read-back."""

import gzip
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import boto3

BUCKET = "nginx-logs-demo"
INSTANCES = ["i-0123456789abcdef0", "i-0fedcba9876543210", "i-0a1b2c3d4e5f60718"]
PATHS = ["/", "/index.html", "/api/v1/orders", "/api/v1/users/42", "/static/app.js", "/healthz", "/search?q=caf%C3%A9"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "curl/8.5.0", "ELB-HealthChecker/2.0"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    moto = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return moto, f"http://127.0.0.1:{port}"
        except OSError:
            if moto.poll() is not None or time.monotonic() > deadline:
                sys.exit("moto_server did not start")
            time.sleep(0.05)


def access_log(rng, now, n):
    lines = []
    for i in range(n):
        t = now - timedelta(minutes=30) + timedelta(seconds=i * 1800 / n)
        ip = f"203.0.113.{rng.randint(1, 254)}"
        status = rng.choice([200, 200, 200, 304, 404, 502])
        lines.append(f'{ip} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET {rng.choice(PATHS)} HTTP/1.1" {status} '
                     f'{rng.randint(0, 20000)} "-" "{rng.choice(AGENTS)}"')
        if i == n // 2:
            lines.append("a line that nginx did not write")
    return "\n".join(lines) + "\n"


def error_log(now):
    t = lambda m: (now - timedelta(minutes=m)).strftime("%Y/%m/%d %H:%M:%S")
    return (
        f"{t(20)} [notice] 1201#1201: signal process started\n"
        f'{t(15)} [error] 1204#1204: *31 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), '
        f'client: 203.0.113.9, server: www.example.com, request: "GET /favicon.ico HTTP/1.1", host: "www.example.com"\n'
        f'{t(5)} [error] 1204#1204: *35 FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught Error in /var/www/index.php:3\n'
        f"Stack trace:\n#0 {{main}}\" while reading response header from upstream, client: 203.0.113.50, "
        f'server: www.example.com, request: "GET /index.php HTTP/1.1", upstream: "fastcgi://unix:/run/php-fpm/www.sock:", host: "www.example.com"\n'
    )


def record(key):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:DEMO"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "demo",
            "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
            "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": 0, "sequencer": "00"}}}


def main():
    binary = sys.argv[1]
    moto, endpoint = start_moto()
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", RETENTION_DAYS="7")
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_LAMBDA_RUNTIME_API", None)
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo")
        s3, logs = boto3.client("s3", **kw), boto3.client("logs", **kw)
        s3.create_bucket(Bucket=BUCKET)

        rng, now = random.Random(7), datetime.now(timezone.utc)
        keys = []
        for n, iid in enumerate(INSTANCES):
            day, stamp = now.strftime("%Y/%m/%d"), now.strftime("%Y%m%dT%H%M")
            akey = f"nginx/{iid}/access/{day}/access.log-{stamp}.gz"
            s3.put_object(Bucket=BUCKET, Key=akey, Body=gzip.compress(access_log(rng, now, 200 + 100 * n).encode()))
            ekey = f"nginx/{iid}/error/{day}/error.log-{stamp}"
            s3.put_object(Bucket=BUCKET, Key=ekey, Body=error_log(now).encode())
            keys += [akey, ekey]
            print(f"uploaded s3://{BUCKET}/{akey}\nuploaded s3://{BUCKET}/{ekey}")

        os.makedirs(".demo", exist_ok=True)
        with open(".demo/event.json", "w") as f:
            json.dump({"Records": [record(k) for k in keys]}, f, indent=2)
        print(f"\n$ {binary} replay --event .demo/event.json   (AWS_ENDPOINT_URL={endpoint})")
        run = subprocess.run([binary, "replay", "--event", ".demo/event.json"], env=env, capture_output=True, text=True)
        if run.returncode not in (0, 1):
            sys.exit(f"replay failed ({run.returncode}):\n{run.stderr}")
        summary = json.loads(run.stdout)
        print(json.dumps({k: v for k, v in summary.items() if k != "objects"}, indent=2))

        again = subprocess.run([binary, "replay", "--event", ".demo/event.json"], env=env, capture_output=True, text=True)
        second = json.loads(again.stdout)
        print(f"\nThe same event delivered again (S3 delivers at least once): already_delivered="
              f"{second['already_delivered']}, events sent={second['events']} (exactly once per object)")

        # Logs that were in the bucket before any notification: backfill finds them by listing.
        earlier = now - timedelta(hours=3)
        for iid in INSTANCES:
            key = f"nginx/{iid}/access/{earlier:%Y/%m/%d}/access.log-{earlier:%Y%m%dT%H%M}.gz"
            s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(access_log(rng, earlier, 150).encode()))
            print(f"uploaded without a notification: s3://{BUCKET}/{key}")
        for args in (["--dry-run"], []):
            cmd = [binary, "backfill", f"s3://{BUCKET}/nginx/", *args]
            print(f"\n$ {' '.join(cmd[1:])}")
            bf = subprocess.run(cmd, env=env, capture_output=True, text=True)
            print(bf.stderr.rstrip())
            if not args:
                out = json.loads(bf.stdout)
                print(json.dumps({k: out[k] for k in ("objects_delivered", "already_delivered", "objects_failed",
                                                      "lines", "events", "batches", "delivery")}))
            else:
                print(bf.stdout.rstrip())

        print("\nWhat arrived in CloudWatch Logs:")
        for g in logs.describe_log_groups(logGroupNamePrefix="nginx-")["logGroups"]:
            print(f"\nlog group {g['logGroupName']} (retention {g.get('retentionInDays')} days)")
            for st in logs.describe_log_streams(logGroupName=g["logGroupName"])["logStreams"]:
                events = logs.get_log_events(logGroupName=g["logGroupName"], logStreamName=st["logStreamName"],
                                             startFromHead=True, limit=10000)["events"]
                print(f"  stream {st['logStreamName']}: {len(events)} events; first:")
                ts = datetime.fromtimestamp(events[0]["timestamp"] / 1000, timezone.utc).isoformat()
                print(f"    {ts}  {events[0]['message'][:300]}")
        return run.returncode
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    sys.exit(main())
