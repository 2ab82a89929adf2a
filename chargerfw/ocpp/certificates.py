"""The station's certificate store (OCPP 1.6 Security Whitepaper: InstallCertificate,
DeleteCertificate, GetInstalledCertificateIds, SignCertificate, CertificateSigned) over the
layout of ``[security]`` (:class:`~chargerfw.config.station.SecuritySection`).

Two halves. The pure checks take certificates and limits and return what to do or raise a
:class:`CertificateError` naming the problem: :func:`check_root_install`,
:func:`find_root_to_delete`, :func:`check_signed_chain`, :func:`signing_request`,
:func:`renewal_due`. :class:`CertificateStore` carries them out on files.

Decisions the whitepaper leaves open:

- Roots are CA certificates (basicConstraints CA). Their CertificateHashData is computed as
  OCSP's CertID (RFC 6960) with SHA-256: issuerNameHash over the DER of the certificate's
  issuer name, issuerKeyHash over the issuer's subjectPublicKey bits (the root's own key for a
  self-signed root), serialNumber in hex without leading zeroes.
- The last root of a type is never deleted (DeleteCertificate Failed): without a
  CentralSystemRootCertificate the station could not verify its backend again, without a
  ManufacturerRootCertificate it could not take any signed firmware. Install the new one first.
- AdditionalRootCertificateCheck true: a new CentralSystemRootCertificate must be signed by the
  installed one; the installed one stays as a fallback (``*.fallback.pem``, still trusted)
  until a connection has succeeded, then :meth:`CertificateStore.central_system_confirmed`
  deletes it.
- The station's key is EC P-256 (TLS_ECDHE_ECDSA suites of security profile 3); the CSR's
  subject is CN = charge point id, O = CpoName. The key waits in ``pending-key.pem`` (0600)
  and a repeated SignCertificate reuses it, so a late CertificateSigned for an earlier CSR
  still fits.
- A CertificateSigned chain must chain to an installed CentralSystemRootCertificate (the
  backend's CA hierarchy), its leaf carry the pending key, CN = charge point id and, when
  CpoName is set, O = CpoName.
- Installing the station's certificate is crash-safe: the chain and key are written into a new
  generation directory (each file fsynced, then the directory renamed complete), and the
  ``charge_point`` symlink is swapped to it with one rename. A power cut at any point leaves
  ``charge_point/`` at the old or the new pair, never a mix.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from chargerfw import x509chain
from chargerfw.config.station import SecuritySection
from chargerfw.durable import sync_directory, write_atomically, write_synced
from chargerfw.logs import get_logger
from chargerfw.x509chain import ROOT_SUFFIXES

log = get_logger(__name__)

HASH_ALGORITHM = "SHA256"
MAX_CERTIFICATE_LENGTH = 5500  # InstallCertificate.req certificate, string[5500]
FALLBACK_SUFFIX = ".fallback.pem"
_HEX = re.compile(r"[0-9a-fA-F]+")


class CertificateUse(enum.StrEnum):
    CENTRAL_SYSTEM_ROOT = "CentralSystemRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"


# -- errors: each names its problem -----------------------------------------------------------

class CertificateError(Exception):
    """A certificate operation refused; nothing was stored."""


class BadCertificate(CertificateError):
    """Not PEM, not the number of certificates expected, or too long."""


class NotACertificateAuthority(CertificateError):
    """A root to install is not a CA certificate."""


class StoreFull(CertificateError):
    """CertificateStoreMaxLength roots are installed already."""


class NotSignedByInstalledRoot(CertificateError):
    """AdditionalRootCertificateCheck: the new CentralSystemRootCertificate is not signed by
    the installed one."""


class CertificateNotFound(CertificateError):
    """No installed root has the CertificateHashData."""


class LastRootCertificate(CertificateError):
    """The last root of its type cannot be deleted."""


class BadHashData(CertificateError):
    """A CertificateHashData that is not SHA256 hex hashes and a hex serial number."""


class ChargePointCertificateRefused(CertificateError):
    """A CertificateSigned chain the station does not install."""


class ChainTooLarge(ChargePointCertificateRefused):
    """Longer than CertificateSignedMaxChainSize."""


class NoPendingKey(ChargePointCertificateRefused):
    """No SignCertificate is waiting for its certificate."""


class KeyMismatch(ChargePointCertificateRefused):
    """The leaf's public key is not the pending key's."""


class WrongSubject(ChargePointCertificateRefused):
    """The leaf's CN is not the charge point id (or its O not CpoName)."""


class InvalidChain(ChargePointCertificateRefused):
    """Expired, not yet valid, or not chaining to an installed CentralSystemRootCertificate."""


# -- CertificateHashData ----------------------------------------------------------------------

@dataclass(frozen=True)
class CertificateHashData:
    """Identifies an installed certificate (hex strings, as on the wire)."""

    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    hash_algorithm: str = HASH_ALGORITHM

    def to_wire(self) -> dict[str, str]:
        """The library's (snake_case) form of CertificateHashDataType."""
        return {"hash_algorithm": self.hash_algorithm, "issuer_name_hash": self.issuer_name_hash,
                "issuer_key_hash": self.issuer_key_hash, "serial_number": self.serial_number}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CertificateHashData:
        """From DeleteCertificate's certificateHashData (snake_case); :class:`BadHashData`."""
        try:
            algorithm = str(data["hash_algorithm"])
            name_hash, key_hash = str(data["issuer_name_hash"]), str(data["issuer_key_hash"])
            serial = str(data["serial_number"])
        except (KeyError, TypeError):
            raise BadHashData("certificateHashData needs hashAlgorithm, issuerNameHash, "
                              "issuerKeyHash and serialNumber") from None
        if algorithm != HASH_ALGORITHM:
            raise BadHashData(f"hashAlgorithm {algorithm!r}: this station hashes with SHA256")
        for label, value in (("issuerNameHash", name_hash), ("issuerKeyHash", key_hash),
                             ("serialNumber", serial)):
            if not _HEX.fullmatch(value):
                raise BadHashData(f"{label} {value[:40]!r} is not hexadecimal")
        return cls(name_hash.lower(), key_hash.lower(), _canonical_serial(serial), algorithm)

    def matches(self, other: CertificateHashData) -> bool:
        return (self.hash_algorithm == other.hash_algorithm
                and self.issuer_name_hash.lower() == other.issuer_name_hash.lower()
                and self.issuer_key_hash.lower() == other.issuer_key_hash.lower()
                and _canonical_serial(self.serial_number) == _canonical_serial(other.serial_number))


def _canonical_serial(serial: str) -> str:
    return serial.lower().lstrip("0") or "0"


def hash_data(cert: x509.Certificate, issuer: x509.Certificate) -> CertificateHashData:
    """``cert``'s CertificateHashData with SHA-256, ``issuer`` being the certificate that
    signed it (``cert`` itself for a self-signed root): OCSP's CertID."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return CertificateHashData(request.issuer_name_hash.hex(), request.issuer_key_hash.hex(),
                               format(cert.serial_number, "x"))


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def parse_certificates(pem: str, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text; :class:`BadCertificate` if there is none."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise BadCertificate(f"{what} is not a PEM certificate: {exc}") from None
    return certs


def _pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# -- roots: pure checks ----------------------------------------------------------------------

@dataclass(frozen=True)
class InstalledRoot:
    use: CertificateUse
    cert: x509.Certificate
    path: Path
    hash_data: CertificateHashData
    fallback: bool = False  # a replaced CentralSystemRootCertificate kept until confirmed


@dataclass(frozen=True)
class RootInstall:
    """What installing a root takes: write ``cert``; under AdditionalRootCertificateCheck, keep
    ``becomes_fallback`` as the fallback and drop ``dropped`` (the earlier fallback)."""

    cert: x509.Certificate
    already_installed: bool = False
    becomes_fallback: tuple[InstalledRoot, ...] = ()
    dropped: tuple[InstalledRoot, ...] = ()


def check_root_install(pem: str, use: CertificateUse, installed: list[InstalledRoot], *,
                       store_max_length: int, additional_root_check: bool,
                       now: datetime) -> RootInstall:
    """InstallCertificate's checks: one PEM CA certificate, valid now, room in the store
    (CertificateStoreMaxLength counts the roots of both types), and under
    AdditionalRootCertificateCheck a CentralSystemRootCertificate signed by the installed one.
    Installing a root already there changes nothing."""
    if len(pem) > MAX_CERTIFICATE_LENGTH:
        raise BadCertificate(f"the certificate is longer than {MAX_CERTIFICATE_LENGTH} characters")
    certs = parse_certificates(pem, "the certificate")
    if len(certs) != 1:
        raise BadCertificate(f"one certificate expected, {len(certs)} given")
    cert = certs[0]
    if not x509chain.may_issue(cert):
        raise NotACertificateAuthority(
            f"{x509chain.subject_name(cert)} is not a CA certificate (basicConstraints, keyUsage)")
    try:
        x509chain.check_validity(cert, now)
    except x509chain.CertificateChainError as exc:
        raise BadCertificate(str(exc)) from None
    same_use = [r for r in installed if r.use is use]
    if any(fingerprint(r.cert) == fingerprint(cert) for r in same_use):
        return RootInstall(cert, already_installed=True)
    if additional_root_check and use is CertificateUse.CENTRAL_SYSTEM_ROOT and same_use:
        current = [r for r in same_use if not r.fallback]
        if not any(x509chain.issued_by(cert, r.cert) for r in current):
            raise NotSignedByInstalledRoot(
                f"{x509chain.subject_name(cert)} is not signed by the installed "
                "CentralSystemRootCertificate (AdditionalRootCertificateCheck)")
        dropped = tuple(r for r in same_use if r.fallback)
        if len(installed) - len(dropped) + 1 > store_max_length:
            raise StoreFull(f"{store_max_length} root certificates installed already "
                            "(CertificateStoreMaxLength)")
        return RootInstall(cert, becomes_fallback=tuple(current), dropped=dropped)
    if len(installed) + 1 > store_max_length:
        raise StoreFull(f"{store_max_length} root certificates installed already "
                        "(CertificateStoreMaxLength)")
    return RootInstall(cert)


def find_root_to_delete(target: CertificateHashData,
                        installed: list[InstalledRoot]) -> InstalledRoot:
    """The root DeleteCertificate names; :class:`CertificateNotFound`, or
    :class:`LastRootCertificate` for the last (non-fallback) root of its type."""
    found = next((r for r in installed if r.hash_data.matches(target)), None)
    if found is None:
        raise CertificateNotFound("no installed certificate has this certificateHashData")
    remaining = [r for r in installed
                 if r.use is found.use and r is not found and not r.fallback]
    if not found.fallback and not remaining:
        raise LastRootCertificate(f"{x509chain.subject_name(found.cert)} is the last "
                                  f"{found.use.value}; install its successor first")
    return found


def root_hash_data(cert: x509.Certificate,
                   issuers: Iterable[x509.Certificate]) -> CertificateHashData:
    """A root's CertificateHashData: its issuer is itself when self-signed, else the installed
    certificate that signed it; with neither (a replaced root's issuer deleted since) the
    certificate's own key stands in, so the station lists and deletes it consistently."""
    if x509chain.is_self_signed(cert):
        return hash_data(cert, cert)
    issuer = next((c for c in issuers if c is not cert and x509chain.issued_by(cert, c)), cert)
    return hash_data(cert, issuer)


# -- the station's own certificate: pure checks ------------------------------------------------

def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def signing_request(key: ec.EllipticCurvePrivateKey, charge_point_id: str,
                    cpo_name: str) -> str:
    """The PEM CSR (PKCS#10, SHA-256) of SignCertificate: CN = charge point id, O = CpoName
    (left out while CpoName is not set)."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, charge_point_id)]
    if cpo_name:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, cpo_name))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name(attributes))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def check_signed_chain(chain_pem: str, *, pending_key: ec.EllipticCurvePrivateKey | None,
                       charge_point_id: str, cpo_name: str, roots: list[x509.Certificate],
                       max_chain_size: int, now: datetime) -> list[x509.Certificate]:
    """CertificateSigned's checks; the chain (leaf first) to install, or a
    :class:`ChargePointCertificateRefused` naming the problem."""
    if len(chain_pem) > max_chain_size:
        raise ChainTooLarge(f"the certificate chain has {len(chain_pem)} characters, "
                            f"CertificateSignedMaxChainSize is {max_chain_size}")
    try:
        chain = parse_certificates(chain_pem, "the certificate chain")
    except BadCertificate as exc:
        raise InvalidChain(str(exc)) from None
    if pending_key is None:
        raise NoPendingKey("no SignCertificate waits for a certificate (no pending key)")
    leaf = chain[0]
    if _public_der(leaf.public_key()) != _public_der(pending_key.public_key()):
        raise KeyMismatch(f"{x509chain.subject_name(leaf)} is not for the key of the last "
                          "SignCertificate")
    common_names = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [charge_point_id]:
        raise WrongSubject(f"the certificate's CN is {common_names}, the charge point id is "
                           f"{charge_point_id!r}")
    if cpo_name:
        organizations = [a.value for a in
                         leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if organizations != [cpo_name]:
            raise WrongSubject(f"the certificate's O is {organizations}, CpoName is "
                               f"{cpo_name!r}")
    try:
        x509chain.chain_to_root(leaf, chain[1:], roots, now,
                                roots_name="CentralSystemRootCertificate")
    except x509chain.CertificateChainError as exc:
        raise InvalidChain(str(exc)) from None
    return chain


def renewal_due(leaf: x509.Certificate, now: datetime, renew_before: timedelta) -> bool:
    """Whether the station's certificate expires within ``renew_before`` (or has)."""
    return leaf.not_valid_after_utc - now <= renew_before


def expiring(certs: Iterable[x509.Certificate], now: datetime,
             within: timedelta) -> list[x509.Certificate]:
    """The certificates that expire within ``within`` (or have)."""
    return [c for c in certs if c.not_valid_after_utc - now <= within]


# -- files ------------------------------------------------------------------------------------

def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class CertificateStore:
    """The certificate files of ``[security]``: roots of both types, the station's
    certificate and key, the pending key. Every method that changes a file checks first (the
    pure functions above) and changes nothing when it refuses."""

    security: SecuritySection
    clock: Callable[[], datetime] | None = field(default=None, repr=False)

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    def _roots_dir(self, use: CertificateUse) -> Path:
        return (self.security.central_system_roots_dir if use is CertificateUse.CENTRAL_SYSTEM_ROOT
                else self.security.manufacturer_roots_dir)

    # -- roots ---------------------------------------------------------------------------------

    def roots(self, use: CertificateUse | None = None) -> list[InstalledRoot]:
        """The installed roots (of ``use``, or both types); an unreadable file is skipped."""
        uses = [use] if use is not None else list(CertificateUse)
        found: list[InstalledRoot] = []
        for kind in uses:
            directory = self._roots_dir(kind)
            try:
                files = sorted(p for p in directory.iterdir()
                               if p.suffix in ROOT_SUFFIXES and not p.name.startswith("."))
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("certificates.roots_unreadable", path=str(directory), error=str(exc))
                continue
            entries: list[tuple[Path, x509.Certificate]] = []
            for path in files:
                try:
                    entries.extend((path, c) for c in
                                   x509.load_pem_x509_certificates(path.read_bytes()))
                except (OSError, ValueError) as exc:
                    log.warning("certificates.unreadable_root", path=str(path), error=str(exc))
            certs = [c for _, c in entries]
            found.extend(InstalledRoot(kind, c, p, root_hash_data(c, certs),
                                       p.name.endswith(FALLBACK_SUFFIX)) for p, c in entries)
        return found

    def install_root(self, use: CertificateUse, pem: str, *, store_max_length: int,
                     additional_root_check: bool) -> RootInstall:
        """InstallCertificate: the root written as ``<fingerprint>.pem`` (atomically), or a
        :class:`CertificateError`."""
        plan = check_root_install(pem, use, self.roots(), store_max_length=store_max_length,
                                  additional_root_check=additional_root_check, now=self.now())
        if plan.already_installed:
            return plan
        directory = self._roots_dir(use)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(directory / f"{fingerprint(plan.cert)}.pem", _pem([plan.cert]), 0o644)
        for old in plan.dropped:
            self._remove_root(old)
        for old in plan.becomes_fallback:
            self._remove_root(old)
            write_atomically(directory / f"{fingerprint(old.cert)}{FALLBACK_SUFFIX}",
                             _pem([old.cert]), 0o644)
        return plan

    def delete_root(self, target: CertificateHashData) -> InstalledRoot:
        """DeleteCertificate: the root removed, or a :class:`CertificateError`."""
        found = find_root_to_delete(target, self.roots())
        self._remove_root(found)
        return found

    def _remove_root(self, root: InstalledRoot) -> None:
        """Remove one certificate; a file holding others too is rewritten without it."""
        try:
            others = [c for c in x509.load_pem_x509_certificates(root.path.read_bytes())
                      if fingerprint(c) != fingerprint(root.cert)]
        except (OSError, ValueError):
            others = []
        if others:
            write_atomically(root.path, _pem(others), 0o644)
        else:
            root.path.unlink(missing_ok=True)
            sync_directory(root.path.parent)

    def central_system_confirmed(self) -> list[InstalledRoot]:
        """A connection verified with the current roots: fallback roots are deleted."""
        dropped = [r for r in self.roots(CertificateUse.CENTRAL_SYSTEM_ROOT) if r.fallback]
        for root in dropped:
            self._remove_root(root)
        return dropped

    # -- the station's certificate --------------------------------------------------------------

    def pending_key(self) -> ec.EllipticCurvePrivateKey | None:
        path = self.security.pending_charge_point_key
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("certificates.pending_key_unreadable", path=str(path), error=str(exc))
            return None
        return key if isinstance(key, ec.EllipticCurvePrivateKey) else None

    def signing_request(self, charge_point_id: str, cpo_name: str) -> str:
        """The CSR for SignCertificate, over the pending key (made now if there is none)."""
        key = self.pending_key()
        if key is None:
            key = new_private_key()
            directory = self.security.charge_point_generations_dir
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(self.security.pending_charge_point_key, _key_pem(key), 0o600)
        return signing_request(key, charge_point_id, cpo_name)

    def charge_point_chain(self) -> list[x509.Certificate]:
        """The station's installed certificate chain (leaf first); empty if there is none."""
        self.recover()
        try:
            return x509.load_pem_x509_certificates(
                self.security.charge_point_certificate.read_bytes())
        except (OSError, ValueError):
            return []

    def install_charge_point_certificate(self, chain_pem: str, *, charge_point_id: str,
                                         cpo_name: str, max_chain_size: int,
                                         ) -> list[x509.Certificate]:
        """CertificateSigned: check the chain, then make it and the pending key the station's
        (see the module's notes on crash safety). Raises :class:`ChargePointCertificateRefused`."""
        key = self.pending_key()
        chain = check_signed_chain(
            chain_pem, pending_key=key, charge_point_id=charge_point_id, cpo_name=cpo_name,
            roots=[r.cert for r in self.roots(CertificateUse.CENTRAL_SYSTEM_ROOT)],
            max_chain_size=max_chain_size, now=self.now())
        assert key is not None  # check_signed_chain refuses without one
        self.recover()
        generations = self.security.charge_point_generations_dir
        generations.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{self.now().strftime('%Y%m%dT%H%M%S')}-{fingerprint(chain[0])[:16]}"
        building = generations / f".{name}.tmp"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(mode=0o700)
        write_synced(building / self.security.charge_point_key.name, _key_pem(key), 0o600)
        write_synced(building / self.security.charge_point_certificate.name, _pem(chain),
                      0o644)
        sync_directory(building)
        os.replace(building, generations / name)
        sync_directory(generations)
        self._point_at(generations / name)
        self.security.pending_charge_point_key.unlink(missing_ok=True)
        sync_directory(generations)
        self._remove_unused_generations()
        return chain

    @property
    def _link(self) -> Path:
        return self.security.charge_point_certificate.parent

    def _point_at(self, generation: Path) -> None:
        """Swap the ``charge_point`` symlink to ``generation`` in one rename."""
        link = self._link
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(os.path.relpath(generation, link.parent))
        os.replace(temporary, link)
        sync_directory(link.parent)

    def _generations(self) -> list[Path]:
        try:
            return sorted(p for p in self.security.charge_point_generations_dir.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def recover(self) -> None:
        """Bring the layout to a state the installer relies on: a provisioned ``charge_point``
        directory becomes the first generation (renamed, then linked: a cut between leaves no
        link, which the next call repairs by linking the newest generation)."""
        link = self._link
        if link.is_dir() and not link.is_symlink():
            generations = self.security.charge_point_generations_dir
            generations.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = generations / "00000000T000000-provisioned"
            os.replace(link, target)
            sync_directory(link.parent)
            self._point_at(target)
        elif not link.is_symlink() and not link.exists():
            complete = self._generations()
            if complete:
                self._point_at(complete[-1])

    def _remove_unused_generations(self) -> None:
        current = self._link.resolve()
        directory = self.security.charge_point_generations_dir
        for path in directory.iterdir():
            if path.is_dir() and path.resolve() != current:
                shutil.rmtree(path, ignore_errors=True)

