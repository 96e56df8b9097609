#!/usr/bin/env python3
"""The EC2 API's answers stored in tests/data/ec2, served on 127.0.0.1 for the collector's
console tests: DescribeInstances (by instance id, or by the aws:cloudformation:stack-name tag)
and GetConsoleOutput (one stored answer per instance). Prints "listening PORT" when ready.

  ec2_recorded.py DIR
"""
import http.server
import re
import sys
import urllib.parse

DIR = sys.argv[1]
STACK = "probe-vpce"
ITEM = re.compile(r"(?ms)^ {16}<item>\n {20}<instanceId>(i-[0-9a-f]+)</instanceId>.*?^ {16}</item>\n")


def error(code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>"
    )
    return 400, body


def describe_instances(params):
    with open(f"{DIR}/DescribeInstances.xml") as f:
        text = f.read()
    ids = {v for k, v in params.items() if k.startswith("InstanceId.")}
    filters = {
        params[k]: params.get(k.replace(".Name", ".Value.1"))
        for k in params
        if k.startswith("Filter.") and k.endswith(".Name")
    }
    stack = filters.get("tag:aws:cloudformation:stack-name")
    def keep(m):
        if ids and m.group(1) not in ids:
            return ""
        if "tag:aws:cloudformation:stack-name" in filters and stack != STACK:
            return ""
        return m.group(0)
    return 200, ITEM.sub(keep, text)


def get_console_output(params):
    instance = params.get("InstanceId", "")
    try:
        with open(f"{DIR}/GetConsoleOutput-{instance}.xml") as f:
            return 200, f.read()
    except FileNotFoundError:
        return error("InvalidInstanceID.NotFound", f"The instance ID '{instance}' does not exist")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        action = params.get("Action")
        if action == "DescribeInstances":
            status, body = describe_instances(params)
        elif action == "GetConsoleOutput":
            status, body = get_console_output(params)
        else:
            status, body = error("InvalidAction", f"{action} is not recorded")
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
