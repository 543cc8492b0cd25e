"""Real mutual-TLS handshakes between test hosts, with Python's ssl module.

  python3 mtls_probe.py serve --bind ADDR --port P --dir D [--count N] [--timeout S] [--crl F] --out FILE
      accept up to N connections (client certificate required), record each outcome as JSON lines
  python3 mtls_probe.py connect --address ADDR --port P --name NAME --dir D [--ca FILE] [--crl F]
      connect to ADDR, verify the server as NAME, present D's certificate, print the outcome as JSON

With --crl the peer's certificate is also checked against that CRL (OpenSSL's CRL check of the leaf),
as a service configured with the CRL the revoke role installs would.

D holds node.key, node-fullchain.crt and ca-bundle.crt as node_certificate installs them.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import time


def context(server, directory, ca=None, crl=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(directory, "node-fullchain.crt"), os.path.join(directory, "node.key"))
    ctx.load_verify_locations(ca or os.path.join(directory, "ca-bundle.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if crl:
        ctx.load_verify_locations(crl)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def names(cert):
    return sorted(value for _kind, value in cert.get("subjectAltName", ()))


def serve(args):
    ctx = context(True, args.dir, crl=args.crl)
    deadline = time.time() + args.timeout
    with socket.create_server((args.bind, args.port)) as sock, open(args.out, "a") as out:
        sock.settimeout(1)
        served = 0
        while served < args.count and time.time() < deadline:
            try:
                conn, peer = sock.accept()
            except socket.timeout:
                continue
            served += 1
            record = {"peer_address": peer[0]}
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    record.update(ok=True, client_names=names(tls.getpeercert()), version=tls.version())
                    tls.sendall(b"hello from server\n")
            except (ssl.SSLError, OSError) as exc:
                record.update(ok=False, error=str(exc))
            out.write(json.dumps(record) + "\n")
            out.flush()


def connect(args):
    ctx = context(False, args.dir, args.ca, args.crl)
    result = {"address": args.address, "name": args.name}
    for _attempt in range(50):  # the server may still be starting
        try:
            with socket.create_connection((args.address, args.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=args.name) as tls:
                    result.update(ok=True, server_names=names(tls.getpeercert()), version=tls.version(),
                                  reply=tls.recv(64).decode().strip())
            break
        except ConnectionRefusedError:
            time.sleep(0.2)
        except (ssl.SSLError, OSError) as exc:
            result.update(ok=False, error=str(exc))
            break
    else:
        result.update(ok=False, error="connection refused")
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--count", type=int, default=10)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--out", required=True)
    s.add_argument("--crl")
    c = sub.add_parser("connect")
    c.add_argument("--address", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--ca")
    c.add_argument("--crl")
    args = parser.parse_args()
    (serve if args.command == "serve" else connect)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
