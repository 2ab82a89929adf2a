"""The operator's CA for the fleet: it signs the certificate signing requests chargers send
with SignCertificate (OCPP 1.6 Security Whitepaper) and gives the CertificateHashData of a
certificate, as chargers report their installed roots.

A CA directory (``chargerfw csms ca init DIR``) holds ``ca.pem`` (the CA certificate, then
the certificates above it when it is an intermediate) and ``ca-key.pem`` (its private key,
mode 0600). A new CA has an EC P-256 key (the key type of the chargers' own keys and of
security profile 3's TLS_ECDHE_ECDSA suites); an existing CA given as certificate and key may
be EC or RSA.

A CSR is signed when its signature is valid, its key is EC (P-256, P-384) or RSA of 2048 bits
or more, its CN is the charge point id of the connection it came over and, when a CpoName is
configured, its O is that name. The certificate is for TLS client authentication (security
profile 3), valid for ``validity`` from the moment it is signed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
DEFAULT_VALIDITY = timedelta(days=365)
DEFAULT_CA_VALIDITY = timedelta(days=3650)
CSR_MAX = 5500  # SignCertificate.req csr: string[0..5500]
MIN_RSA_BITS = 2048
EC_CURVES = (ec.SECP256R1, ec.SECP384R1)
# The whitepaper's event type a refused CSR is stored under.
INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CaError(Exception):
    """The CA directory or the files given for it cannot be used; the message says why."""


class CsrRefused(Exception):
    """A certificate signing request that is not signed; the message says why."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA signed for a charger."""

    charge_point_id: str
    certificate: x509.Certificate
    chain_pem: str  # the certificate, then the CA's certificates below a self-signed root

    @property
    def serial(self) -> str:
        return format(self.certificate.serial_number, "x")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _is_self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def certificate_hash_data(cert: x509.Certificate, issuer: x509.Certificate
                          ) -> dict[str, str]:
    """``cert``'s CertificateHashData with SHA-256 (snake_case, as the ``ocpp`` library
    carries it): OCSP's CertID, ``issuer`` being the certificate that signed ``cert`` (itself
    for a self-signed root); the serial number in hex without leading zeroes."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return {"hash_algorithm": "SHA256", "issuer_name_hash": request.issuer_name_hash.hex(),
            "issuer_key_hash": request.issuer_key_hash.hex(),
            "serial_number": format(cert.serial_number, "x")}


def same_hash_data(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two CertificateHashData (snake_case) name the same certificate."""
    def canonical(data: dict[str, str]) -> tuple[str, ...]:
        return (str(data.get("hash_algorithm", "")).upper(),
                str(data.get("issuer_name_hash", "")).lower(),
                str(data.get("issuer_key_hash", "")).lower(),
                str(data.get("serial_number", "")).lower().lstrip("0") or "0")
    return canonical(a) == canonical(b)


def load_root(path: Path) -> tuple[x509.Certificate, str]:
    """The first certificate of a PEM file and its PEM text; CaError when there is none."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CaError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CaError(f"{path} holds no PEM certificate: {exc}") from None
    return certs[0], _pem(certs[0])


def root_hash_data(cert: x509.Certificate) -> dict[str, str]:
    """A root's CertificateHashData as a charger reports it: the root is its own issuer."""
    return certificate_hash_data(cert, cert)


def _load_key(path: Path) -> CaKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CaError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{path} holds a {type(key).__name__}; the CA key must be EC or RSA")
    return key


def _check_ca(certs: list[x509.Certificate], key: CaKey, where: str) -> None:
    cert = certs[0]
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(f"{where}: {cert.subject.rfc4514_string()} is not a CA certificate "
                      "(basicConstraints CA:TRUE)")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, public)
            != key.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise CaError(f"{where}: the key is not the CA certificate's key")
    if datetime.now(UTC) > cert.not_valid_after_utc:
        raise CaError(f"{where}: the CA certificate expired at "
                      f"{cert.not_valid_after_utc.isoformat()}")


class FleetCa:
    """The CA in a directory, checking and signing chargers' CSRs."""

    def __init__(self, certs: list[x509.Certificate], key: CaKey, *,
                 cpo_name: str | None = None, validity: timedelta = DEFAULT_VALIDITY) -> None:
        self.certificate = certs[0]
        self._above = [c for c in certs[1:] if not _is_self_signed(c)]
        self._ca_in_chain = not _is_self_signed(self.certificate)
        self._key = key
        self.cpo_name = cpo_name or None
        self.validity = validity

    @classmethod
    def load(cls, directory: Path, *, cpo_name: str | None = None,
             validity: timedelta = DEFAULT_VALIDITY) -> FleetCa:
        """The CA of ``directory``; CaError when it is missing, unreadable or not a CA."""
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        try:
            certs = x509.load_pem_x509_certificates(cert_path.read_bytes())
        except OSError as exc:
            raise CaError(f"cannot read {cert_path}: {exc.strerror or exc}; make a CA with "
                          "`chargerfw csms ca init`") from None
        except ValueError as exc:
            raise CaError(f"{cert_path} holds no PEM certificate: {exc}") from None
        key = _load_key(key_path)
        if key_path.stat().st_mode & 0o077:
            raise CaError(f"{key_path} may be read by others than its owner; chmod 600 it")
        _check_ca(certs, key, str(directory))
        return cls(certs, key, cpo_name=cpo_name, validity=validity)

    def check_csr(self, csr_pem: str, charge_point_id: str) -> x509.CertificateSigningRequest:
        """The CSR, when this CA signs it for ``charge_point_id``; CsrRefused otherwise."""
        if len(csr_pem) > CSR_MAX:
            raise CsrRefused(f"the CSR has {len(csr_pem)} characters, at most {CSR_MAX}")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as exc:
            raise CsrRefused(f"the CSR is not a PEM certificate request: {exc}") from None
        if not csr.is_signature_valid:
            raise CsrRefused("the CSR's signature does not match its key")
        key = csr.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise CsrRefused(f"the CSR's RSA key has {key.key_size} bits, at least "
                                 f"{MIN_RSA_BITS}")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, EC_CURVES):
                raise CsrRefused(f"the CSR's EC key is on {key.curve.name}, not P-256 or P-384")
        else:
            raise CsrRefused(f"the CSR's key is a {type(key).__name__}, not EC or RSA")
        common_names = [str(a.value) for a in
                        csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if common_names != [charge_point_id]:
            raise CsrRefused(f"the CSR's CN is {', '.join(common_names) or 'missing'}, not the "
                             f"charge point id {charge_point_id!r}")
        if self.cpo_name is not None:
            organizations = [str(a.value) for a in
                             csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            if organizations != [self.cpo_name]:
                raise CsrRefused(f"the CSR's O is {', '.join(organizations) or 'missing'}, "
                                 f"not the CpoName {self.cpo_name!r}")
        return csr

    def sign(self, csr: x509.CertificateSigningRequest, charge_point_id: str,
             now: datetime | None = None) -> IssuedCertificate:
        """A client certificate for a checked CSR, with the subject it asked for."""
        now = now or datetime.now(UTC)
        ca_key_id = x509.SubjectKeyIdentifier.from_public_key(self.certificate.public_key())
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        not_after = min(now + self.validity, self.certificate.not_valid_after_utc)
        cert = (x509.CertificateBuilder()
                .subject_name(csr.subject)
                .issuer_name(self.certificate.subject)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))  # chargers' clocks drift
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    key_encipherment=is_rsa, data_encipherment=False,
                    key_agreement=not is_rsa, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ca_key_id), critical=False)
                .sign(self._key, hashes.SHA256()))
        chain = [cert] + ([self.certificate] if self._ca_in_chain else []) + self._above
        return IssuedCertificate(charge_point_id, cert, "".join(_pem(c) for c in chain))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init_ca(directory: Path, *, common_name: str = "chargerfw fleet CA",
            organization: str | None = None, validity: timedelta = DEFAULT_CA_VALIDITY,
            existing: tuple[Path, Path] | None = None) -> x509.Certificate:
    """Make ``directory`` a CA directory: a new self-signed EC P-256 CA, or the ``existing``
    (certificate file, key file) checked and copied in. Refuses (CaError) a directory that
    holds a CA already."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() or key_path.exists():
        raise CaError(f"{directory} holds a CA already ({CA_CERT}, {CA_KEY})")
    key: CaKey
    if existing is not None:
        try:
            certs = x509.load_pem_x509_certificates(existing[0].read_bytes())
        except OSError as exc:
            raise CaError(f"cannot read {existing[0]}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise CaError(f"{existing[0]} holds no PEM certificate: {exc}") from None
        key = _load_key(existing[1])
        _check_ca(certs, key, str(existing[0]))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        subject = x509.Name(attributes)
        certs = [x509.CertificateBuilder()
                 .subject_name(subject).issuer_name(subject)
                 .public_key(key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(now - timedelta(minutes=5))
                 .not_valid_after(now + validity)
                 .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                 .add_extension(x509.KeyUsage(
                     digital_signature=True, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                critical=False)
                 .sign(key, hashes.SHA256())]
    directory.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    cert_path.write_text("".join(_pem(c) for c in certs))
    return certs[0]
