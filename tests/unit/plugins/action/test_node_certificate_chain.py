# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_certificate issuer_chain: the action plugin takes only a chain whose first certificate is the signing CA's."""
from __future__ import annotations

import datetime
import os

import pytest

pytest.importorskip("ansible")

from ansible_collections.securebydefault.pki.plugins.action.node_certificate import chain_instead  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.cross_sign import CROSS_FILE  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402

PASS = "correct horse"


def read(ca, name):
    with open(os.path.join(ca.path, name)) as handle:
        return handle.read()


def test_node_certificate_takes_only_a_chain_of_the_signing_ca(make_ca):
    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    rotation.step(rotation.RotationRequest(path=new.path + ".json", old_ca_path=old.path, new_ca_path=new.path,
                                           cross_sign=True, old_ca_passphrase=PASS),
                  check_mode=False, now=datetime.datetime.now(datetime.timezone.utc))
    issuer = read(new, "ca.crt") + read(new, "root.crt")
    assert chain_instead(issuer, read(new, CROSS_FILE)) == read(new, CROSS_FILE)
    for wrong in (read(old, "ca.crt"), read(new, "root.crt")):  # another CA; the new root (another key and name)
        with pytest.raises(PKIError) as err:
            chain_instead(issuer, wrong)
        assert err.value.field == "issuer_chain"


def test_what_follows_the_first_certificate_must_be_its_issuers(make_ca):
    """After the cross-signed certificate, only CAs that issued the one before: the old root may follow (it signed
    the cross certificate); another CA, the new root or a leaf may not."""
    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    stranger = make_ca("Stranger CA", intermediate=True, permitted_dns=["zone.test"])
    rotation.step(rotation.RotationRequest(path=new.path + ".json", old_ca_path=old.path, new_ca_path=new.path,
                                           cross_sign=True, old_ca_passphrase=PASS),
                  check_mode=False, now=datetime.datetime.now(datetime.timezone.utc))
    issuer = read(new, "ca.crt") + read(new, "root.crt")
    cross = read(new, CROSS_FILE)
    first = cross.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    # the cross certificate, then the old CA's certificate that signed it: a chain
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    issued_by = x509.load_pem_x509_certificate(first.encode()).issuer
    signer = {x509.load_pem_x509_certificate(read(old, name).encode()).subject: read(old, name)
              for name in ("ca.crt", "root.crt")}[issued_by]
    assert chain_instead(issuer, first + signer) == first + signer
    for wrong in (read(stranger, "ca.crt"), read(new, "root.crt"), read(stranger, "root.crt")):
        with pytest.raises(PKIError) as err:
            chain_instead(issuer, first + wrong)
        assert err.value.field == "issuer_chain" and "certificate #2" in err.value.problem, err.value
