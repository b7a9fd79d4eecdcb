"""The reference point of issue 7: a straightforward Python parser of `combined` lines
(regex, strptime, json.dumps), stdin → one JSON object per line on stdout."""
import json
import re
import sys
from datetime import datetime

LINE = re.compile(
    r'(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"')

out = sys.stdout
for line in sys.stdin:
    m = LINE.match(line)
    if not m:
        out.write(json.dumps({"raw": line.rstrip("\n")}) + "\n")
        continue
    d = m.groupdict()
    ts = datetime.strptime(d["time_local"], "%d/%b/%Y:%H:%M:%S %z")
    d["status"] = int(d["status"])
    d["body_bytes_sent"] = int(d["body_bytes_sent"])
    out.write(json.dumps({"timestamp": int(ts.timestamp() * 1000), "message": json.dumps(d)}) + "\n")
