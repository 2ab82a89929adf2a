"""The station's certificate store: the pure checks (table tests) and the files they guard."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cert_factory
import pytest
from cert_factory import Issued
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargerfw.config.station import SecuritySection
from chargerfw.ocpp.certificates import (
    BadCertificate,
    BadHashData,
    CertificateHashData,
    CertificateNotFound,
    CertificateStore,
    CertificateUse,
    ChainTooLarge,
    InstalledRoot,
    InvalidChain,
    KeyMismatch,
    LastRootCertificate,
    NoPendingKey,
    NotACertificateAuthority,
    NotSignedByInstalledRoot,
    StoreFull,
    WrongSubject,
    check_root_install,
    check_signed_chain,
    find_root_to_delete,
    fingerprint,
    hash_data,
    new_private_key,
    renewal_due,
    root_hash_data,
    signing_request,
)

CS = CertificateUse.CENTRAL_SYSTEM_ROOT
MF = CertificateUse.MANUFACTURER_ROOT
NOW = datetime.now(UTC)


def _root(name: str = "Root", **kwargs: object) -> Issued:
    return cert_factory.issue(name, ca=True, **kwargs)  # type: ignore[arg-type]


def _installed(use: CertificateUse, issued: Issued, fallback: bool = False) -> InstalledRoot:
    return InstalledRoot(use, issued.cert, Path(f"/nowhere/{issued.cert.serial_number}.pem"),
                         hash_data(issued.cert, issued.cert), fallback)


# -- CertificateHashData ----------------------------------------------------------------------

def test_hash_data_is_the_whitepaper_definition_computed_independently():
    root = _root()
    data = hash_data(root.cert, root.cert)
    point = root.key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
    assert data.hash_algorithm == "SHA256"
    assert data.issuer_name_hash == hashlib.sha256(root.cert.issuer.public_bytes()).hexdigest()
    assert data.issuer_key_hash == hashlib.sha256(point).hexdigest()
    assert data.serial_number == format(root.cert.serial_number, "x")
    assert not data.serial_number.startswith("0")


def test_an_issued_root_is_hashed_with_its_issuers_key():
    old = _root("Old")
    new = cert_factory.issue("New", ca=True, issuer=old)
    data = root_hash_data(new.cert, [old.cert, new.cert])
    assert data == hash_data(new.cert, old.cert)
    assert data.issuer_key_hash != hash_data(new.cert, new.cert).issuer_key_hash


def test_hash_data_from_the_wire_matches_regardless_of_case_and_leading_zeroes():
    data = hash_data(_root().cert, _root().cert)
    wire = {"hash_algorithm": "SHA256", "issuer_name_hash": data.issuer_name_hash.upper(),
            "issuer_key_hash": data.issuer_key_hash.upper(),
            "serial_number": "00" + data.serial_number.upper()}
    assert CertificateHashData.from_wire(wire).matches(data)
    assert CertificateHashData.from_wire(data.to_wire()) == data


@pytest.mark.parametrize("change, problem", [
    ({"hash_algorithm": "SHA384"}, "SHA256"),
    ({"issuer_name_hash": "zz"}, "issuerNameHash"),
    ({"serial_number": "0x1f"}, "serialNumber"),
    ({"issuer_key_hash": None}, "issuerKeyHash"),
])
def test_bad_hash_data_is_refused_by_name(change, problem):
    wire = {"hash_algorithm": "SHA256", "issuer_name_hash": "ab", "issuer_key_hash": "cd",
            "serial_number": "1f", **change}
    if change.get("issuer_key_hash", "") is None:
        del wire["issuer_key_hash"]
    with pytest.raises(BadHashData, match=problem):
        CertificateHashData.from_wire(wire)


# -- installing roots -------------------------------------------------------------------------

def _install(pem: str, use: CertificateUse = CS, installed: list[InstalledRoot] | None = None,
             max_length: int = 10, additional: bool = False):
    return check_root_install(pem, use, installed or [], store_max_length=max_length,
                              additional_root_check=additional, now=NOW)


def test_root_install_refusals():
    ca = _root("CA")
    leaf = cert_factory.issue("leaf", issuer=ca)
    expired = _root("Old", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    cases: list[tuple[str, type[Exception], dict[str, object]]] = [
        ("not a certificate", BadCertificate, {}),
        (ca.pem + ca.pem, BadCertificate, {}),
        (ca.pem + " " * 5500, BadCertificate, {}),
        (leaf.pem, NotACertificateAuthority, {}),
        (expired.pem, BadCertificate, {}),
        (ca.pem, StoreFull, {"installed": [_installed(MF, _root("M"))], "max_length": 1}),
    ]
    for pem, error, kwargs in cases:
        with pytest.raises(error):
            _install(pem, **kwargs)  # type: ignore[arg-type]


def test_root_install_counts_both_types_and_accepts_an_installed_root_again():
    first, second = _root("A"), _root("B")
    installed = [_installed(CS, first), _installed(MF, _root("M"))]
    assert _install(second.pem, installed=installed, max_length=3).cert == second.cert
    assert _install(first.pem, installed=installed, max_length=2).already_installed
    with pytest.raises(StoreFull):
        _install(second.pem, installed=installed, max_length=2)


def test_additional_root_check_replaces_the_root_and_keeps_it_as_fallback():
    old = _root("Old")
    successor = cert_factory.issue("New", ca=True, issuer=old)
    stranger = _root("Stranger")
    installed = [_installed(CS, old)]
    with pytest.raises(NotSignedByInstalledRoot):
        _install(stranger.pem, installed=installed, additional=True)
    plan = _install(successor.pem, installed=installed, additional=True)
    assert [r.cert for r in plan.becomes_fallback] == [old.cert] and plan.dropped == ()
    # Without the check, any CA root is added beside the others.
    assert _install(stranger.pem, installed=installed).becomes_fallback == ()
    # The first CentralSystemRootCertificate needs no predecessor; manufacturer roots never do.
    assert _install(stranger.pem, additional=True).cert == stranger.cert
    assert _install(stranger.pem, MF, installed, additional=True).becomes_fallback == ()


def test_additional_root_check_drops_the_earlier_fallback():
    oldest, old = _root("Oldest"), _root("Old")
    successor = cert_factory.issue("New", ca=True, issuer=old)
    installed = [_installed(CS, oldest, fallback=True), _installed(CS, old)]
    plan = _install(successor.pem, installed=installed, additional=True, max_length=2)
    assert [r.cert for r in plan.dropped] == [oldest.cert]
    assert [r.cert for r in plan.becomes_fallback] == [old.cert]


# -- deleting roots ---------------------------------------------------------------------------

def test_delete_finds_by_hash_data_and_never_deletes_the_last_root_of_a_type():
    a, b, m = _root("A"), _root("B"), _root("M")
    installed = [_installed(CS, a), _installed(CS, b), _installed(MF, m)]
    assert find_root_to_delete(installed[0].hash_data, installed).cert == a.cert
    with pytest.raises(LastRootCertificate, match="ManufacturerRootCertificate"):
        find_root_to_delete(installed[2].hash_data, installed)
    with pytest.raises(LastRootCertificate, match="CentralSystemRootCertificate"):
        find_root_to_delete(installed[0].hash_data, installed[:1])
    with pytest.raises(CertificateNotFound):
        find_root_to_delete(hash_data(_root("X").cert, _root("X").cert), installed)
    # A fallback is not what keeps the type alive, and is itself deletable.
    with_fallback = [_installed(CS, a, fallback=True), _installed(CS, b)]
    assert find_root_to_delete(with_fallback[0].hash_data, with_fallback).fallback
    with pytest.raises(LastRootCertificate):
        find_root_to_delete(with_fallback[1].hash_data, with_fallback)


# -- the station's certificate ----------------------------------------------------------------

def test_signing_request_subject_key_and_signature():
    key = new_private_key()
    csr = x509.load_pem_x509_csr(signing_request(key, "CP-7", "Acme Charging").encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-7"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme Charging"
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert public.public_numbers() == key.public_key().public_numbers()
    bare = x509.load_pem_x509_csr(signing_request(key, "CP-7", "").encode())
    assert bare.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []


def _signed(ca: Issued, key: ec.EllipticCurvePrivateKey, cn: str = "CP1",
            organization: str = "Acme", **kwargs: object) -> Issued:
    return cert_factory.issue(cn, issuer=ca, key=key, organization=organization,
                              eku=[cert_factory.CLIENT_AUTH], **kwargs)  # type: ignore[arg-type]


def _check(chain: str, key: ec.EllipticCurvePrivateKey | None, roots: list[x509.Certificate],
           max_size: int = 10000, cpo_name: str = "Acme") -> list[x509.Certificate]:
    return check_signed_chain(chain, pending_key=key, charge_point_id="CP1", cpo_name=cpo_name,
                              roots=roots, max_chain_size=max_size, now=NOW)


def test_signed_chain_checks():
    root = _root("Operator Root")
    sub = cert_factory.issue("Operator Sub CA", ca=True, issuer=root)
    key = new_private_key()
    good = _signed(sub, key)
    chain = good.pem + sub.pem
    assert [c.subject for c in _check(chain, key, [root.cert])] == [good.cert.subject,
                                                                     sub.cert.subject]
    cases: list[tuple[str, ec.EllipticCurvePrivateKey | None, list[x509.Certificate],
                      dict[str, object], type[Exception]]] = [
        (chain, key, [root.cert], {"max_size": len(chain) - 1}, ChainTooLarge),
        ("garbage", key, [root.cert], {}, InvalidChain),
        (chain, None, [root.cert], {}, NoPendingKey),
        (chain, new_private_key(), [root.cert], {}, KeyMismatch),
        (_signed(sub, key, cn="CP2").pem + sub.pem, key, [root.cert], {}, WrongSubject),
        (_signed(sub, key, organization="Other").pem + sub.pem, key, [root.cert], {},
         WrongSubject),
        (good.pem, key, [root.cert], {}, InvalidChain),  # the sub CA left out
        (chain, key, [_root("Someone Else").cert], {}, InvalidChain),
        (_signed(sub, key, not_before=NOW - timedelta(days=30),
                 not_after=NOW - timedelta(days=1)).pem + sub.pem, key, [root.cert], {},
         InvalidChain),
    ]
    for pem, pending, roots, kwargs, error in cases:
        with pytest.raises(error):
            _check(pem, pending, roots, **kwargs)  # type: ignore[arg-type]
    # Without CpoName the O is not checked.
    assert _check(_signed(sub, key, organization="Other").pem + sub.pem, key, [root.cert],
                  cpo_name="")


@pytest.mark.parametrize("days_left, due", [(400, False), (31, False), (30, True), (1, True),
                                            (-1, True)])
def test_renewal_due(days_left, due):
    cert = _root(not_after=NOW + timedelta(days=days_left)).cert
    assert renewal_due(cert, NOW, timedelta(days=30)) is due


# -- the files --------------------------------------------------------------------------------

@pytest.fixture
def security(tmp_path: Path) -> SecuritySection:
    return SecuritySection(certificates_dir=tmp_path / "certs")


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_roots_installed_listed_and_deleted_in_files(security):
    store = CertificateStore(security)
    a, b, m = _root("A"), _root("B"), _root("M")
    for use, root in ((CS, a), (CS, b), (MF, m)):
        store.install_root(use, root.pem, store_max_length=10, additional_root_check=False)
    assert {r.cert for r in store.roots(CS)} == {a.cert, b.cert}
    assert [r.cert for r in store.roots(MF)] == [m.cert]
    assert sorted(p.name for p in security.central_system_roots_dir.iterdir()) == sorted(
        f"{fingerprint(c)}.pem" for c in (a.cert, b.cert))
    before = _tree(security.certificates_dir)
    with pytest.raises(LastRootCertificate):
        store.delete_root(store.roots(MF)[0].hash_data)
    with pytest.raises(StoreFull):
        store.install_root(CS, _root("C").pem, store_max_length=3, additional_root_check=False)
    assert _tree(security.certificates_dir) == before
    deleted = store.delete_root(hash_data(a.cert, a.cert))
    assert deleted.cert == a.cert and [r.cert for r in store.roots(CS)] == [b.cert]


def test_a_provisioned_bundle_file_is_listed_and_a_deleted_root_leaves_the_others(security):
    a, b = _root("A"), _root("B")
    security.central_system_roots_dir.mkdir(parents=True)
    (security.central_system_roots_dir / "bundle.crt").write_text(a.pem + b.pem)
    store = CertificateStore(security)
    store.delete_root(hash_data(a.cert, a.cert))
    assert x509.load_pem_x509_certificates(
        (security.central_system_roots_dir / "bundle.crt").read_bytes()) == [b.cert]


def test_additional_root_check_keeps_a_trusted_fallback_until_confirmed(security):
    store = CertificateStore(security)
    old = _root("Old")
    new = cert_factory.issue("New", ca=True, issuer=old)
    store.install_root(CS, old.pem, store_max_length=10, additional_root_check=True)
    store.install_root(CS, new.pem, store_max_length=10, additional_root_check=True)
    roots = {r.cert: r for r in store.roots(CS)}
    assert roots[old.cert].fallback and not roots[new.cert].fallback
    assert roots[new.cert].hash_data == hash_data(new.cert, old.cert)
    assert [r.cert for r in store.central_system_confirmed()] == [old.cert]
    assert [r.cert for r in store.roots(CS)] == [new.cert]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _install_signed(store: CertificateStore, ca: Issued, cn: str = "CP1") -> Issued:
    store.signing_request(cn, "Acme")
    key = store.pending_key()
    assert key is not None
    signed = _signed(ca, key, cn=cn)
    store.install_charge_point_certificate(signed.pem, charge_point_id=cn, cpo_name="Acme",
                                           max_chain_size=10000)
    return signed


def test_pending_key_is_private_and_reused_until_a_certificate_is_installed(security):
    store = CertificateStore(security)
    ca = _root("Operator")
    store.install_root(CS, ca.pem, store_max_length=10, additional_root_check=False)
    first = x509.load_pem_x509_csr(store.signing_request("CP1", "Acme").encode())
    again = x509.load_pem_x509_csr(store.signing_request("CP1", "Acme").encode())
    assert first.public_key() == again.public_key()
    assert _mode(security.pending_charge_point_key) == 0o600
    signed = _install_signed(store, ca)
    assert not security.pending_charge_point_key.exists()
    assert security.charge_point_certificate.parent.is_symlink()
    assert store.charge_point_chain() == [signed.cert]
    assert _mode(security.charge_point_key) == 0o600
    key = serialization.load_pem_private_key(security.charge_point_key.read_bytes(), None)
    assert key.public_key() == signed.cert.public_key()  # type: ignore[union-attr]
    fresh = x509.load_pem_x509_csr(store.signing_request("CP1", "Acme").encode())
    assert fresh.public_key() != first.public_key()


def test_a_refused_chain_changes_no_file(security):
    store = CertificateStore(security)
    ca = _root("Operator")
    store.install_root(CS, ca.pem, store_max_length=10, additional_root_check=False)
    _install_signed(store, ca)
    store.signing_request("CP1", "Acme")
    before = _tree(security.certificates_dir)
    with pytest.raises(KeyMismatch):
        store.install_charge_point_certificate(_signed(ca, new_private_key()).pem,
                                               charge_point_id="CP1", cpo_name="Acme",
                                               max_chain_size=10000)
    assert _tree(security.certificates_dir) == before


def test_a_second_certificate_replaces_the_first_and_its_generation(security):
    store = CertificateStore(security)
    ca = _root("Operator")
    store.install_root(CS, ca.pem, store_max_length=10, additional_root_check=False)
    _install_signed(store, ca)
    second = _install_signed(store, ca)
    assert store.charge_point_chain() == [second.cert]
    generations = [p for p in security.charge_point_generations_dir.iterdir() if p.is_dir()]
    assert len(generations) == 1


def test_a_provisioned_directory_becomes_the_first_generation(security):
    ca = _root("Operator")
    provisioned = cert_factory.client_certificate(ca, "CP1")
    directory = security.charge_point_certificate.parent
    directory.mkdir(parents=True)
    security.charge_point_certificate.write_text(provisioned.pem)
    security.charge_point_key.write_text(provisioned.key_pem)
    store = CertificateStore(security)
    assert store.charge_point_chain() == [provisioned.cert]
    assert directory.is_symlink()
    store.install_root(CS, ca.pem, store_max_length=10, additional_root_check=False)
    signed = _install_signed(store, ca)
    assert store.charge_point_chain() == [signed.cert]


def test_a_power_cut_at_any_step_leaves_a_matching_certificate_and_key(security):
    """The install's steps, cut after each: the link resolves to a pair that belongs
    together (the old one until the swap, the new one after)."""
    store = CertificateStore(security)
    ca = _root("Operator")
    store.install_root(CS, ca.pem, store_max_length=10, additional_root_check=False)
    old = _install_signed(store, ca)

    def pair_matches() -> bool:
        cert = x509.load_pem_x509_certificate(security.charge_point_certificate.read_bytes())
        key = serialization.load_pem_private_key(security.charge_point_key.read_bytes(), None)
        return cert.public_key() == key.public_key()  # type: ignore[union-attr]

    # Cut while building the new generation: a temporary directory the link never points at.
    building = security.charge_point_generations_dir / ".partial.tmp"
    building.mkdir()
    (building / "key.pem").write_text("half a key")
    assert pair_matches() and store.charge_point_chain() == [old.cert]
    # Cut after the complete generation was renamed, before the swap: still the old pair.
    generation = security.charge_point_generations_dir / "99990101T000000-next"
    generation.mkdir()
    new = cert_factory.client_certificate(ca, "CP1")
    (generation / "cert.pem").write_text(new.pem)
    (generation / "key.pem").write_text(new.key_pem)
    assert pair_matches() and store.charge_point_chain() == [old.cert]
    # Cut while a provisioned directory was being turned into a generation (no link): the
    # newest complete generation is linked again.
    os.unlink(security.charge_point_certificate.parent)
    assert store.charge_point_chain() == [new.cert] and pair_matches()
