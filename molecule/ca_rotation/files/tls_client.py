# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One mutual-TLS connection: exit 0 if the server answered, 1 if the handshake was refused.

    python3 tls_client.py CERT KEY CAFILE ADDRESS PORT SERVER_NAME
"""
import socket
import ssl
import sys


def main(cert, key, cafile, address, port, server_name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile)
    try:
        with socket.create_connection((address, int(port)), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                answer = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        print("refused: %s" % exc)
        return 1
    print("answered: %r" % answer)
    return 0 if answer == b"ok" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:7]))
