"""Signed releases on the backend: publishing with the manufacturer's signing certificate and a
signature (given, or made with the key), each refusal naming what is wrong and keeping nothing,
and SignedUpdateFirmware sent by `cp firmware update --signed` with the release's certificate
and signature and the one-time URL's id as requestId."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tarfile
from pathlib import Path

import pytest
from cert_factory import CODE_SIGNING, issue, sign_firmware
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from csms_doubles import add_test_charger, csms_running, sim_charger

from chargerfw.cli import main
from chargerfw.csms.operator_commands import InvalidCommand, check_params

pytestmark = pytest.mark.timeout(120)

ROOT = issue("Manufacturer Root", ca=True)
SIGNER = issue("Firmware Signing", issuer=ROOT, eku=[CODE_SIGNING])
OTHER = issue("Other Signing", issuer=ROOT, eku=[CODE_SIGNING])
RSA_SIGNER = issue("RSA Signing", issuer=ROOT, eku=[CODE_SIGNING],
                   key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _csms(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, "".join(line for line in result.output.splitlines(keepends=True)
                                     if not line.startswith("level="))


async def csms_cli(*args: str) -> tuple[int, str]:
    return await asyncio.to_thread(_csms, *args)


def make_release(path: Path, version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = json.dumps({"version": version}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def verifies(pem: str, signature: str, data: bytes) -> bool:
    from cryptography import x509

    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    raw = base64.b64decode(signature)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(raw, data, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(raw, data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                          salt_length=padding.PSS.AUTO), hashes.SHA256())
    return True


@pytest.mark.parametrize("signer", [SIGNER, RSA_SIGNER], ids=["ecdsa", "rsa-pss"])
def test_publish_signs_with_the_key_and_keeps_certificate_and_signature(tmp_path, signer):
    db = str(tmp_path / "c.db")
    content = make_release(tmp_path / "r.tar", "2.0")
    cert, key = signer.write(tmp_path / "m", "signer")
    code, out = _csms("firmware", "publish", str(tmp_path / "r.tar"), "--signing-certificate",
                      str(cert), "--sign-with", str(key), "--db", db)
    assert code == 0, out
    assert out.startswith("published 2.0 signed as chargerfw-2.0-release.tar")
    code, out = _csms("firmware", "list", "--db", db, "--json")
    [release] = json.loads(out)
    assert release["signing_certificate"] == signer.pem
    assert verifies(release["signing_certificate"], release["signature"], content)


def test_publish_takes_a_signature_made_elsewhere(tmp_path):
    db = str(tmp_path / "c.db")
    content = make_release(tmp_path / "r.tar", "2.0")
    cert, _ = SIGNER.write(tmp_path / "m", "signer")
    signature = tmp_path / "r.tar.sig.b64"
    signature.write_text(sign_firmware(SIGNER, content) + "\n")
    code, out = _csms("firmware", "publish", str(tmp_path / "r.tar"), "--signing-certificate",
                      str(cert), "--signature", str(signature), "--db", db)
    assert code == 0, out
    code, out = _csms("firmware", "list", "--db", db)
    assert "yes" in out.splitlines()[-1]


@pytest.mark.parametrize(("case", "error"), [
    ("signature of another file", "the signature is not valid over r.tar"),
    ("another certificate's key", "the signing key does not belong to the signing certificate"),
    ("not base64", "the signature is not base64"),
    ("not a certificate", "the signing certificate is not a PEM certificate"),
    ("no certificate", "--signature and --sign-with need --signing-certificate"),
    ("both", "--signing-certificate needs one of --signature or --sign-with"),
])
def test_publish_refuses_a_signature_that_cannot_hold_and_keeps_nothing(tmp_path, case, error):
    db, data_dir = str(tmp_path / "c.db"), tmp_path / "files"
    make_release(tmp_path / "r.tar", "2.0")
    cert, key = SIGNER.write(tmp_path / "m", "signer")
    _, other_key = OTHER.write(tmp_path / "m", "other")
    signature = tmp_path / "sig.b64"
    signature.write_text(sign_firmware(SIGNER, b"another file"))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    args = {
        "signature of another file": ["--signing-certificate", cert, "--signature", signature],
        "another certificate's key": ["--signing-certificate", cert, "--sign-with", other_key],
        "not base64": ["--signing-certificate", cert, "--signature", not_pem],
        "not a certificate": ["--signing-certificate", not_pem, "--sign-with", key],
        "no certificate": ["--signature", signature],
        "both": ["--signing-certificate", cert, "--signature", signature, "--sign-with", key],
    }[case]
    code, out = _csms("firmware", "publish", str(tmp_path / "r.tar"), *map(str, args),
                      "--db", db, "--data-dir", str(data_dir))
    assert code == 2 and error in out
    code, out = _csms("firmware", "list", "--db", db, "--json")
    assert json.loads(out) == []
    assert not (data_dir / "firmware").exists() or not list((data_dir / "firmware").iterdir())


def test_signed_needs_a_published_release():
    with pytest.raises(InvalidCommand, match="needs a published release's version"):
        check_params("firmware_update", {"url": "http://x/y.tar", "signed": True})
    with pytest.raises(InvalidCommand, match="signed must be true or false"):
        check_params("firmware_update", {"version": "1.0", "signed": "yes"})


async def test_cp_firmware_update_signed_sends_signed_update_firmware(db, tmp_path):
    data_dir = tmp_path / "files"
    make_release(tmp_path / "signed.tar", "2.0")
    make_release(tmp_path / "plain.tar", "2.1")
    cert, key = SIGNER.write(tmp_path / "m", "signer")
    assert (await csms_cli("firmware", "publish", str(tmp_path / "signed.tar"),
                           "--signing-certificate", str(cert), "--sign-with", str(key),
                           "--db", db, "--data-dir", str(data_dir)))[0] == 0
    assert (await csms_cli("firmware", "publish", str(tmp_path / "plain.tar"), "--db", db,
                           "--data-dir", str(data_dir)))[0] == 0
    code, out = await csms_cli("cp", "firmware", "update", "CP1", "2.1", "--signed", "--db", db)
    assert code == 2 and "release 2.1 was published without a signature" in out

    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        release = await csms.db(csms.store.get_release, "2.0")
        async with sim_charger(csms, "CP1") as charger:
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "2.0", "--signed",
                                       "--retries", "2", "--db", db, "--json")
            assert code == 0, out
            result = json.loads(out)
            assert (result["status"], result["signed"]) == ("Accepted", True)
            [(_, sent)] = [r for r in charger.received if r[0] == "SignedUpdateFirmware"]
            assert sent["request_id"] == result["request_id"]
            assert sent["retries"] == 2
            firmware = sent["firmware"]
            assert (firmware["signing_certificate"], firmware["signature"]) == (
                release["signing_certificate"], release["signature"])
            assert firmware["location"].endswith("/chargerfw-2.0-release.tar")
            assert firmware["retrieve_date_time"].endswith("Z")

            charger.answers["SignedUpdateFirmware"] = "InvalidCertificate"
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "2.0", "--signed",
                                       "--db", db)
            assert code == 1
            assert out.strip() == ("CP1: InvalidCertificate: the charger does not trust the "
                                   "signing certificate (no installed manufacturer root)")
