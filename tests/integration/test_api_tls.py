"""The API over HTTPS from [api] certfile and keyfile, checked with a real HTTPS client against
a certificate made for the test; the same port refuses plain HTTP."""

import datetime
import ipaddress

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.cluster import Cluster

HOST = "127.0.0.10"  # the launcher's address for a cluster's first node


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pykron test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "api.pem", tmp_path / "api.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    certfile, keyfile = self_signed(tmp_path_factory.mktemp("tls"))
    with Cluster(servers=1, conf={"api": {"certfile": certfile, "keyfile": keyfile}}) as cluster:
        yield cluster, certfile


def test_the_api_answers_https_with_its_certificate(tls_node):
    cluster, certfile = tls_node
    base = cluster.api()
    assert base.startswith(f"https://{HOST}:")
    created = requests.post(f"{base}/v1/jobs", json={"name": "tls", "schedule": "@manually", "executor": "shell",
                                                     "executor_config": {"command": "true"}},
                            verify=certfile, timeout=10)
    assert created.status_code == 201
    assert requests.get(f"{base}/v1/jobs/tls", verify=certfile, timeout=10).json()["name"] == "tls"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{base}/health", timeout=10)  # not a certificate this client trusts


def test_plain_http_on_the_https_port_gets_no_answer(tls_node):
    cluster, _ = tls_node
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(cluster.api().replace("https:", "http:") + "/v1/jobs", timeout=10)
