# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TLS service as most are: it loads its certificate at start and again only when told (SIGHUP).

    python3 tls_service.py CERT KEY ADDRESS PORT PIDFILE [CLIENT_CA_BUNDLE]

With CLIENT_CA_BUNDLE it serves mutual TLS: clients must present a certificate of a CA in that
bundle, as it was when the service last loaded it.
"""
import os
import signal
import socket
import ssl
import sys

cert, key, address, port, pidfile = sys.argv[1:6]
client_cas = sys.argv[6] if len(sys.argv) > 6 else None
state = {}


def load(*_args):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_cas:
        context.load_verify_locations(client_cas)
        context.verify_mode = ssl.CERT_REQUIRED
    state["context"] = context


load()
signal.signal(signal.SIGHUP, load)
with open(pidfile, "w") as handle:
    handle.write(str(os.getpid()))
listener = socket.create_server((address, int(port)))
while True:
    try:
        conn = listener.accept()[0]
    except InterruptedError:
        continue
    try:
        conn.settimeout(5)
        with state["context"].wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"HTTP/1.0 200 OK\r\n\r\nok\n")
    except (ssl.SSLError, OSError):
        conn.close()
