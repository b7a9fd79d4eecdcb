"""Cold start: a stand-in for the Lambda Runtime API on loopback starts the binary and timestamps its first
GET /next (init time), optionally serves one event and times the answer.
usage: coldstart.py BINARY RUNS EVENT_FILE|-   ('-' = measure init only, never hand out an event)"""
import http.server, json, os, socketserver, subprocess, sys, threading, time, uuid, statistics

binary, runs, event_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
event = open(event_file, 'rb').read() if event_file != '-' else None

class State:
    def __init__(self):
        self.t_next = []; self.t_resp = None; self.resp = None; self.err = None
        self.cond = threading.Condition()
st = None

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        now = time.monotonic()
        if self.path != '/2018-06-01/runtime/invocation/next':
            self.send_response(404); self.send_header('content-length','0'); self.end_headers(); return
        with st.cond:
            st.t_next.append(now); n = len(st.t_next); st.cond.notify_all()
        if event is None or n > 1:
            time.sleep(30)   # hold the long poll; process is killed meanwhile
            return
        rid = str(uuid.uuid4())
        self.send_response(200)
        for k, v in [('Content-Type','application/json'), ('Lambda-Runtime-Aws-Request-Id', rid),
                     ('Lambda-Runtime-Deadline-Ms', str(int(time.time()*1000)+300000)),
                     ('Lambda-Runtime-Invoked-Function-Arn','arn:aws:lambda:us-east-1:123456789012:function:nginx-cloudwatch-forwarder'),
                     ('Lambda-Runtime-Trace-Id','Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0'),
                     ('Content-Length', str(len(event)))]:
            self.send_header(k, v)
        self.end_headers(); self.wfile.write(event)
        with st.cond: st.t_served = time.monotonic()
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        now = time.monotonic()
        with st.cond:
            st.t_resp = now; st.resp = (self.path.rsplit('/',1)[-1], body); st.cond.notify_all()
        self.send_response(202); self.send_header('content-length','2'); self.end_headers(); self.wfile.write(b'{}')

class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
srv = S(('127.0.0.1', 0), H); port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()

env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f'127.0.0.1:{port}', AWS_LAMBDA_FUNCTION_NAME='nginx-cloudwatch-forwarder',
           AWS_LAMBDA_FUNCTION_MEMORY_SIZE='128', AWS_LAMBDA_FUNCTION_VERSION='$LATEST', AWS_LAMBDA_LOG_FORMAT='JSON',
           AWS_LAMBDA_LOG_STREAM_NAME='x', AWS_LAMBDA_LOG_GROUP_NAME='/aws/lambda/x')
inits = []
for i in range(runs):
    st = State()
    log = open(os.devnull, 'wb')
    t0 = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    with st.cond:
        ok = st.cond.wait_for(lambda: st.t_next, timeout=20)
    if not ok:
        print('run', i, 'no GET /next within 20s; exit code', p.poll()); p.kill(); continue
    inits.append((st.t_next[0]-t0)*1000)
    line = f'run {i}: spawn->first GET /next {inits[-1]:.2f} ms'
    if event is not None:
        with st.cond:
            st.cond.wait_for(lambda: len(st.t_next) >= 2, timeout=60)
        hwm = [l for l in open(f'/proc/{p.pid}/status') if l.startswith(('VmHWM','VmRSS'))]
        line += f'; event served->POST {st.resp[0]} {(st.t_resp-st.t_served)*1000:.1f} ms; ' + ' '.join(x.split()[0]+x.split()[1]+'kB' for x in hwm)
        line += f'\n  response body: {st.resp[1][:300].decode()}'
    print(line, flush=True)
    p.kill(); p.wait(); log.close()
if inits:
    print(f'init over {len(inits)} runs: min {min(inits):.2f} median {statistics.median(inits):.2f} max {max(inits):.2f} ms')
