"""TLS between the SDK and the gateway: a gateway serving gRPC with a certificate made here
(a throwaway CA signs it), joined to the session mesh's planner and Redis."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import ostinato
from ostinato.config import ConfigError, GatewayConfig
from ostinato.mesh import Mesh
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc
from tests.conftest import spawn_service, stop_service

USER = [{"role": "user", "content": "Hello over TLS."}]


def _issue(name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
           server: bool = False) -> tuple[bytes, bytes, x509.Name, ec.EllipticCurvePrivateKey]:
    """A certificate (PEM) and its key (PEM): a self-signed CA when `issuer` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                              critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, subject, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ca.pem, server.pem/server.key (127.0.0.1, localhost), client.pem/client.key."""
    out = tmp_path_factory.mktemp("pki")
    ca_pem, _, ca_name, ca_key = _issue("test CA", None)
    files = {"ca": ca_pem}
    files["server"], files["server_key"], *_ = _issue("gateway", (ca_name, ca_key), server=True)
    files["client"], files["client_key"], *_ = _issue("client", (ca_name, ca_key))
    paths = {name: out / f"{name}.pem" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    return paths


def _gateway(mesh: Mesh, tmp: Path, tls: dict[str, str]) -> Iterator[str]:
    config = tmp / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "gateway": {"allow_anonymous": True, "semantic_cache": False, **tls},
        "redis": {"url": mesh.endpoints.redis_url}}))
    proc, info = spawn_service(tmp, "gateway", "--config", str(config), "--planner-address",
                               mesh.endpoints.planner, "--http-port", "-1")
    try:
        yield str(info["address"])
    finally:
        stop_service(proc)


@pytest.fixture(scope="module")
def tls_gateway(mesh: Mesh, pki: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _gateway(mesh, tmp_path_factory.mktemp("tls"), {
        "tls_cert_file": str(pki["server"]), "tls_key_file": str(pki["server_key"])})


@pytest.fixture(scope="module")
def mtls_gateway(mesh: Mesh, pki: dict[str, Path],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _gateway(mesh, tmp_path_factory.mktemp("mtls"), {
        "tls_cert_file": str(pki["server"]), "tls_key_file": str(pki["server_key"]),
        "tls_client_ca_file": str(pki["ca"])})


def _status_of_plain_rpc(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """One RPC without wait-for-ready (the SDK's waits for the gateway): how the handshake went."""
    with (grpc.insecure_channel(address) if credentials is None
          else grpc.secure_channel(address, credentials)) as channel:
        try:
            gateway_pb2_grpc.GatewayStub(channel).CacheStats(gateway_pb2.CacheStatsRequest(),
                                                             timeout=20)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_a_tls_client_calls_the_tls_gateway(tls_gateway: str, pki: dict[str, Path]) -> None:
    with ostinato.Client(tls_gateway, tls=ostinato.Tls(root_certificates=pki["ca"])) as client, \
            client.program() as program:
        assert program.call(messages=USER, max_tokens=3).usage.completion_tokens == 3
    assert program.summary is not None and program.summary.calls_completed == 1


async def test_the_async_client_too(tls_gateway: str, pki: dict[str, Path]) -> None:
    tls = ostinato.Tls(root_certificates=pki["ca"].read_bytes())
    async with ostinato.AsyncClient(tls_gateway, tls=tls) as client:
        stats = await client.cache_stats()
    assert stats.enabled


def test_a_plaintext_client_cannot_reach_a_tls_port(tls_gateway: str, mesh: Mesh,
                                                    pki: dict[str, Path]) -> None:
    assert _status_of_plain_rpc(tls_gateway, None) == grpc.StatusCode.UNAVAILABLE
    # nor a TLS client a plaintext port, nor one that does not trust the gateway's CA
    ca = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    assert _status_of_plain_rpc(mesh.endpoints.gateway, ca) == grpc.StatusCode.UNAVAILABLE
    untrusted = grpc.ssl_channel_credentials(pki["client"].read_bytes())
    assert _status_of_plain_rpc(tls_gateway, untrusted) == grpc.StatusCode.UNAVAILABLE


def test_the_sdk_waits_for_a_gateway_it_cannot_handshake_with_until_its_deadline(
        tls_gateway: str) -> None:
    # (then says it could not connect: no handshake is a connection that never came up)
    with ostinato.Client(tls_gateway, timeout_s=1.0) as client, \
            pytest.raises(ostinato.Unavailable,
                          match=r"cannot reach the gateway.*TLS settings do not match"):
        client.program()


def test_mutual_tls_needs_the_client_certificate(mtls_gateway: str, pki: dict[str, Path]) -> None:
    mine = ostinato.Tls(root_certificates=pki["ca"], client_certificate=pki["client"],
                        client_key=pki["client_key"].read_bytes())
    with ostinato.Client(mtls_gateway, tls=mine) as client:
        assert client.cache_stats().enabled
    no_cert = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    assert _status_of_plain_rpc(mtls_gateway, no_cert) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("fields", "message"), [
    ({"tls_cert_file": "c.pem"}, "set both"),
    ({"tls_key_file": "k.pem"}, "set both"),
    ({"tls_client_ca_file": "ca.pem"}, "mutual TLS needs"),
])
def test_half_a_tls_configuration_is_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GatewayConfig(**fields)


def test_a_client_certificate_goes_with_its_key() -> None:
    with pytest.raises(ValueError, match="go together"):
        ostinato.Tls(client_certificate=b"cert").credentials()
