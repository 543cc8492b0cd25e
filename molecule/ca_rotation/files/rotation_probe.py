# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TLS service and client that reread their certificate files, as the convention expects.

Runs on one test host: serves mutual TLS on ADDRESS:PORT, and connects to every peer
every INTERVAL seconds, counting handshakes that succeed and fail. Certificate, key and
bundle are reread when their files change (every 0.5 s); a pair caught mid-write keeps
the previous, working context. Stats go to STATS (JSON) until the STOP file appears.

    python3 rotation_probe.py CERT KEY BUNDLE ADDRESS PORT STATS STOP PEER=ADDRESS...
"""
import json
import os
import socket
import ssl
import sys
import threading
import time

GRACE = 3.0


class Contexts:
    def __init__(self, cert, key, bundle):
        self.files = (cert, key, bundle)
        self.stamp = None
        self.server = self.client = None
        self.reloads = 0
        self.reload_failures = 0
        self.lock = threading.Lock()
        self.refresh()
        if self.server is None:
            raise SystemExit("cannot load %s" % (self.files,))

    def refresh(self):
        try:
            stamp = tuple(os.stat(f).st_mtime_ns for f in self.files)
        except OSError:
            return
        if stamp == self.stamp:
            return
        cert, key, bundle = self.files
        try:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(cert, key)
            server.load_verify_locations(bundle)
            server.verify_mode = ssl.CERT_REQUIRED
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.load_cert_chain(cert, key)
            client.load_verify_locations(bundle)
        except (ssl.SSLError, OSError):
            self.reload_failures += 1  # e.g. new key beside old certificate: keep the working context
            return
        with self.lock:
            self.server, self.client, self.stamp = server, client, stamp
            self.reloads += 1


def serve(contexts, address, port, stats, stop):
    listener = socket.create_server((address, port))
    listener.settimeout(0.5)
    stopping = None
    # Serve on for a grace period after STOP, so that peers' clients (which stop at STOP) never
    # meet a closed port: only the clients' shutdown ends the measurement.
    while stopping is None or time.time() - stopping < GRACE:
        if stopping is None and os.path.exists(stop):
            stopping = time.time()
        try:
            conn, _peer = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=answer, args=(contexts, conn, stats), daemon=True).start()
    listener.close()


def answer(contexts, conn, stats):
    conn.settimeout(5)
    try:
        with contexts.server.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")
            stats["served"] += 1
    except (ssl.SSLError, OSError) as exc:
        stats["refused"] += 1
        stats["last_refusal"] = str(exc)[:200]


def wait_for_peers(peers, stop):
    """Not measured: until every peer's service listens (the hosts start their probes one by one)."""
    for _name, address, port in peers:
        while not os.path.exists(stop):
            try:
                socket.create_connection((address, port), timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)


def probe(contexts, peers, interval, stats, stop):
    wait_for_peers(peers, stop)
    stats["measuring"] = True
    while not os.path.exists(stop):
        for name, address, port in peers:
            try:
                with socket.create_connection((address, port), timeout=5) as raw:
                    with contexts.client.wrap_socket(raw, server_hostname=name) as tls:
                        if tls.recv(2) != b"ok":
                            raise ssl.SSLError("no answer after the handshake")
                stats["ok"] += 1
            except (ssl.SSLError, OSError) as exc:
                stats["failed"] += 1
                stats["errors"].append("%s %s: %s" % (time.strftime("%H:%M:%S"), name, str(exc)[:200]))
        time.sleep(interval)


def main(argv):
    cert, key, bundle, address, port, stats_path, stop = argv[:7]
    peers = []
    for item in argv[7:]:
        name, peer = item.split("=")
        peers.append((name, peer, int(port)))
    contexts = Contexts(cert, key, bundle)
    stats = {"ok": 0, "failed": 0, "errors": [], "served": 0, "refused": 0, "last_refusal": "", "measuring": False}
    threading.Thread(target=serve, args=(contexts, address, int(port), stats, stop), daemon=True).start()
    threading.Thread(target=probe, args=(contexts, peers, 0.05, stats, stop), daemon=True).start()
    started = time.time()
    while not os.path.exists(stop) and time.time() - started < 1800:
        contexts.refresh()
        stats.update(reloads=contexts.reloads, reload_failures=contexts.reload_failures, pid=os.getpid())
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(dict(stats, errors=stats["errors"][-20:]), handle)
        os.replace(tmp, stats_path)
        time.sleep(0.5)
    time.sleep(GRACE + 0.5)
    with open(stats_path + ".tmp", "w") as handle:
        json.dump(dict(stats, errors=stats["errors"][-20:], stopped=True), handle)
    os.replace(stats_path + ".tmp", stats_path)


if __name__ == "__main__":
    main(sys.argv[1:])
