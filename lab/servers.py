#!/usr/bin/env python3
"""Servers of the emulated VPC lab, one process per role, run inside a lab namespace.

  servers.py https  --listen IP:PORT... --cert C --key K --status N [--header K:V...] [--body B]
                    [--deny-file F]   (403 AccessDenied to everything while F exists)
  servers.py http   --listen IP:PORT... --status N [--body B]
  servers.py tcpfwd --listen IP:PORT... --to IP:PORT...   (a TCP load balancer, round robin)
  servers.py imds   --listen IP:PORT --data FILE [--mode MODE]   (IMDSv2, tokens enforced)

IMDS modes: normal, forbidden (403 to the token), unauthorized (401 to every GET), error500,
garbage (malformed values), stall (never answers). With port 0 the chosen port is printed.

Each runs in the foreground until SIGTERM, so the lab can end it by its PID.
"""
import argparse
import http.server
import itertools
import signal
import socket
import ssl
import sys
import threading


def addr(text):
    """IP:PORT, the IP bare or in brackets (IPv6)."""
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


class LabHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without this, Nagle and delayed
    # ACKs add 40 ms to every answer and the lab would measure its own servers.
    disable_nagle_algorithm = True
    server_version = "lab"
    sys_version = ""
    timeout = 10

    def log_message(self, *args):
        pass


DENIED = (
    "<ErrorResponse><Error><Code>AccessDeniedException</Code><Message>User: anonymous is not"
    " authorized to perform this action with an explicit deny in a VPC endpoint policy</Message>"
    "</Error></ErrorResponse>"
)


def http_handler(status, headers, body, deny_file=None):
    import os

    payload = body.encode()

    class Handler(LabHandler):
        def do_GET(self):
            # While the deny file exists, the endpoint's policy refuses every request.
            denied = deny_file is not None and os.path.exists(deny_file)
            data = DENIED.encode() if denied else payload
            self.send_response(403 if denied else status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind asks DNS for the host's name (getfqdn): not in a lab.
        socket_server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def socket_server_bind(server):
    import socketserver

    socketserver.TCPServer.server_bind(server)


def serve_http(args, tls):
    headers = [h.split(":", 1) for h in args.header]
    handler = http_handler(args.status, headers, args.body, args.deny_file)
    servers = []
    for listen in args.listen:
        server = Server(addr(listen), handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            # The handshake then runs in the handler thread, so one slow client cannot
            # hold the accept loop.
            server.socket = ctx.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        servers.append(server)
    run(s.serve_forever for s in servers)


def serve_imds(args):
    import json
    import secrets
    import time

    def load():
        # Read at every request: the lab's seed rewrites it when a step changes the instance.
        with open(args.data) as f:
            return json.load(f)

    tokens = set()
    mode = args.mode

    class Handler(LabHandler):
        server_version = "EC2ws"

        def reply(self, status, body="", headers=()):
            payload = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_PUT(self):
            if mode == "stall":
                time.sleep(30)
                return
            if self.path != "/latest/api/token":
                return self.reply(404)
            if mode == "forbidden":
                return self.reply(403)
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400)
            token = secrets.token_urlsafe(32)
            tokens.add(token)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            self.reply(200, token, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if mode == "stall":
                time.sleep(30)
                return
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens or mode == "unauthorized":
                return self.reply(401)
            prefix = "/latest/meta-data/"
            if self.path.startswith("/latest/dynamic/"):
                key = self.path[len("/latest/"):]
            elif self.path.startswith(prefix):
                key = self.path[len(prefix):]
            else:
                return self.reply(404)
            data = load()
            if key not in data:
                return self.reply(404)
            if mode == "error500":
                return self.reply(500, "internal error")
            if mode == "garbage":
                return self.reply(200, b"\xff\xfe<html>not metadata</html>")
            self.reply(200, data[key])

    server = Server(addr(args.listen[0]), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    run([server.serve_forever])


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_tcpfwd(args):
    backends = itertools.cycle([addr(t) for t in args.to])
    lock = threading.Lock()

    def accept_loop(listener):
        while True:
            client, _ = listener.accept()
            with lock:
                backend = next(backends)
            try:
                upstream = socket.create_connection(backend, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    listeners = []
    for listen in args.listen:
        s = socket.create_server(addr(listen), reuse_port=False)
        listeners.append(s)
    run(lambda s=s: accept_loop(s) for s in listeners)


def run(loops):
    for loop in loops:
        threading.Thread(target=loop, daemon=True).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["https", "http", "tcpfwd", "imds"])
    p.add_argument("--data")
    p.add_argument("--mode", default="normal")
    p.add_argument("--listen", action="append", required=True)
    p.add_argument("--to", action="append", default=[])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--body", default="")
    p.add_argument("--deny-file")
    args = p.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    if args.role == "tcpfwd":
        serve_tcpfwd(args)
    elif args.role == "imds":
        serve_imds(args)
    else:
        serve_http(args, tls=args.role == "https")


if __name__ == "__main__":
    sys.exit(main())
