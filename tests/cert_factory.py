"""Certificates made by the test itself: CAs, server and client certificates, code-signing
certificates, each with its key, valid or not as the test needs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING


@dataclass
class Issued:
    key: PrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def write(self, directory: Path, name: str, *, chain: tuple[Issued, ...] = (),
              ) -> tuple[Path, Path]:
        """``<name>.pem`` (this certificate, then ``chain``) and ``<name>.key`` (mode 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_text(self.pem + "".join(c.pem for c in chain))
        key_path.write_text(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


def name(common_name: str, organization: str = "Test Organisation") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(common_name: str, *, issuer: Issued | None = None, ca: bool = False,
          key: PrivateKey | None = None, not_before: datetime | None = None,
          not_after: datetime | None = None, eku: list[x509.ObjectIdentifier] | None = None,
          dns_names: list[str] | None = None, ip_addresses: list[str] | None = None,
          organization: str = "Test Organisation") -> Issued:
    """A certificate for ``common_name``, self-signed unless ``issuer`` is given; valid from
    30 days ago for a year unless told otherwise."""
    now = datetime.now(UTC)
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = name(common_name, organization)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - timedelta(days=30))
               .not_valid_after(not_after or now + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if dns_names or ip_addresses:
        alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names or []]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    signer = issuer.key if issuer else key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(key, builder.sign(signer, algorithm))


def server_certificate(ca: Issued, host: str = "localhost", **kwargs: object) -> Issued:
    """A TLS server certificate for ``host`` (and 127.0.0.1) issued by ``ca``."""
    return issue(host, issuer=ca, eku=[SERVER_AUTH], dns_names=[host],
                 ip_addresses=["127.0.0.1"], **kwargs)  # type: ignore[arg-type]


def client_certificate(ca: Issued, charge_point_id: str, **kwargs: object) -> Issued:
    """A TLS client certificate whose CN is ``charge_point_id`` (security profile 3)."""
    return issue(charge_point_id, issuer=ca, eku=[CLIENT_AUTH], **kwargs)  # type: ignore[arg-type]


def sign_request(ca: Issued, csr_pem: str, *, common_name: str | None = None,
                 organization: str | None = None, not_before: datetime | None = None,
                 not_after: datetime | None = None) -> Issued:
    """A client certificate for the key of a PEM CSR, issued by ``ca``: the CSR's CN and O
    unless told otherwise. The returned ``Issued`` has the CA's key (the CSR's stays with its
    maker), so only its ``cert``/``pem`` are of use."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())

    def first(oid: x509.ObjectIdentifier) -> str | None:
        values = csr.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    now = datetime.now(UTC)
    organization = organization or first(NameOID.ORGANIZATION_NAME)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME,
                                     common_name or first(NameOID.COMMON_NAME) or "")]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), critical=False)
            .sign(ca.key, None if isinstance(ca.key, ed25519.Ed25519PrivateKey)
                  else hashes.SHA256()))
    return Issued(ca.key, cert)


def sign_firmware(signer: Issued, firmware: bytes) -> str:
    """The base64 signature over ``firmware`` that SignedUpdateFirmware carries: ECDSA or RSA
    PKCS#1 v1.5 with SHA-256 by ``signer``'s key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import padding

    if isinstance(signer.key, ec.EllipticCurvePrivateKey):
        raw = signer.key.sign(firmware, ec.ECDSA(hashes.SHA256()))
    elif isinstance(signer.key, rsa.RSAPrivateKey):
        raw = signer.key.sign(firmware, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise TypeError(f"cannot sign firmware with a {type(signer.key).__name__}")
    return base64.b64encode(raw).decode()
