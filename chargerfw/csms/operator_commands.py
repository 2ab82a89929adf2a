"""The operator's commands to a charger (Reset, ChangeAvailability, Get/ChangeConfiguration,
TriggerMessage, ClearCache, UnlockConnector, a local-list push, UpdateFirmware,
GetDiagnostics, GetLog, and the Security Whitepaper's InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds and ExtendedTriggerMessage, and a new AuthorizationKey the backend
generates): their arguments checked, sent over the charger's connection, and the charger's
answer as one outcome.

``OperatorCommandRunner.run`` sends one at once (for a caller inside the server). Callers in
other processes queue a request in the database (``request_operator_command`` after
``check_params``); the running server claims it, runs it and writes the outcome back
(``serve_requests``).

An outcome is a JSON object: ``charge_point_id``, ``command``, ``status`` (the charger's
answer, or NotConnected, NoAnswer, CallError), ``ok`` (the charger did what was asked),
``detail`` (a sentence), and what the command adds (GetConfiguration's keys; a push's
counts; a firmware update's or upload's one-time URL's expiry and request id;
GetInstalledCertificateIds' ``certificate_hash_data``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from ocpp.v16.enums import CertificateUse, HashAlgorithm, MessageTrigger

from chargerfw.csms import local_list
from chargerfw.csms.local_list import LocalListPusher
from chargerfw.csms.ocpp_server import ChargerCallError, ChargerNotConnected, OcppServer
from chargerfw.csms.store import AsyncStore, NotFound, generate_password
from chargerfw.csms.store.charger_files import DIAGNOSTICS as DIAGNOSTICS_KIND
from chargerfw.csms.store.charger_files import FIRMWARE as FIRMWARE_KIND
from chargerfw.csms.store.charger_files import LOG as LOG_KIND
from chargerfw.csms.store.charger_files import SIGNED_FIRMWARE as SIGNED_FIRMWARE_KIND
from chargerfw.csms.store.charger_files import IssuedToken
from chargerfw.logs import get_logger

log = get_logger(__name__)

RESET = "reset"
AVAILABILITY = "availability"
CONFIG_GET = "config_get"
CONFIG_SET = "config_set"
TRIGGER = "trigger"
CLEAR_CACHE = "clear_cache"
UNLOCK = "unlock"
LOCAL_LIST_PUSH = "local_list_push"
FIRMWARE_UPDATE = "firmware_update"
DIAGNOSTICS = "diagnostics"
GET_LOG = "get_log"
INSTALL_CERTIFICATE = "install_certificate"
DELETE_CERTIFICATE = "delete_certificate"
CERTIFICATE_IDS = "certificate_ids"
EXTENDED_TRIGGER = "extended_trigger"
AUTHORIZATION_KEY = "authorization_key"

RESET_TYPES = ("Soft", "Hard")
AVAILABILITY_TYPES = ("Operative", "Inoperative")
TRIGGER_MESSAGES = tuple(m.value for m in MessageTrigger if m.value not in (
    "LogStatusNotification", "SignChargePointCertificate"))  # the Security extension's
CONFIG_KEY_MAX = 50  # OCPP CiString50Type
CONFIG_VALUE_MAX = 500  # OCPP CiString500Type
LOG_TYPES = ("DiagnosticsLog", "SecurityLog")
URL_SCHEMES = ("http", "https", "ftp", "ftps")
URL_MAX = 512  # the firmware's location (anyURI; the Security Whitepaper's string[0..512])
RETRIES_MAX = 100
RETRY_INTERVAL_MAX = 86400
CERTIFICATE_TYPES = tuple(use.value for use in CertificateUse)
HASH_ALGORITHMS = tuple(algorithm.value for algorithm in HashAlgorithm)
EXTENDED_TRIGGER_MESSAGES = ("BootNotification", "LogStatusNotification",
                             "FirmwareStatusNotification", "Heartbeat", "MeterValues",
                             "SignChargePointCertificate", "StatusNotification")
CERTIFICATE_MAX = 5500  # InstallCertificate.req certificate: string[0..5500]
HASH_MAX = 128  # CertificateHashDataType issuerNameHash / issuerKeyHash
SERIAL_MAX = 40  # CertificateHashDataType serialNumber
# A self-signed root (CN "Example CSMS root"), the admin API's example for InstallCertificate.
EXAMPLE_ROOT = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBOTCB4KADAgECAgEBMAoGCCqGSM49BAMCMBwxGjAYBgNVBAMMEUV4YW1wbGUg\n"
    "Q1NNUyByb290MB4XDTI2MDEwMTAwMDAwMFoXDTQ2MDEwMTAwMDAwMFowHDEaMBgG\n"
    "A1UEAwwRRXhhbXBsZSBDU01TIHJvb3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AATgs9Y1xVkBpg1YsG3fhF+ckSUe0DqCHTeDW56Gpvk6R5XqWXf9xuiay2SLEUYc\n"
    "Gpkn4KPtdvh5l1iw6q8J2SCQoxMwETAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49\n"
    "BAMCA0gAMEUCIQDjMioxWpUUP3Mew5Jl9odSyWBde2eY9c0X8yvUCiRqKgIgBubV\n"
    "0ppRpEQma5YjGPs+DwpPdCfURmbGrrLSQokvDog=\n"
    "-----END CERTIFICATE-----\n"
)

_EXPLAINED = {
    (RESET, "Accepted"): "the charger will reset",
    (RESET, "Rejected"): "the charger refused to reset",
    (AVAILABILITY, "Accepted"): "the charger changed the availability",
    (AVAILABILITY, "Scheduled"): "the charger will change the availability when its "
                                 "transaction ends",
    (AVAILABILITY, "Rejected"): "the charger refused to change the availability",
    (CONFIG_SET, "Accepted"): "the charger changed the key",
    (CONFIG_SET, "RebootRequired"): "the charger took the value; it applies after a reboot",
    (CONFIG_SET, "Rejected"): "the charger refused the value",
    (CONFIG_SET, "NotSupported"): "the charger does not know the key (or it is read-only)",
    (AUTHORIZATION_KEY, "Accepted"): "the charger took a new AuthorizationKey the backend "
                                     "generated; it is the charger's password from now on",
    (AUTHORIZATION_KEY, "RebootRequired"): "the charger took a new AuthorizationKey the "
                                           "backend generated; it is the charger's password "
                                           "from now on (the charger uses it after a reboot)",
    (AUTHORIZATION_KEY, "Rejected"): "the charger refused the new AuthorizationKey; its "
                                     "password is unchanged",
    (AUTHORIZATION_KEY, "NotSupported"): "the charger does not know AuthorizationKey; its "
                                         "password is unchanged",
    (TRIGGER, "Accepted"): "the charger will send the message",
    (TRIGGER, "Rejected"): "the charger refused to send the message",
    (TRIGGER, "NotImplemented"): "the charger cannot send that message",
    (CLEAR_CACHE, "Accepted"): "the charger cleared its authorization cache",
    (CLEAR_CACHE, "Rejected"): "the charger refused to clear its authorization cache",
    (UNLOCK, "Unlocked"): "the charger unlocked the connector",
    (UNLOCK, "UnlockFailed"): "the charger could not unlock the connector",
    (UNLOCK, "NotSupported"): "the charger cannot unlock that connector",
    (FIRMWARE_UPDATE, "Accepted"): "the charger will download the firmware",
    (FIRMWARE_UPDATE, "AcceptedCanceled"): "the charger will download the firmware; it "
                                           "cancelled an update in progress",
    (FIRMWARE_UPDATE, "InvalidCertificate"): "the charger does not trust the signing "
                                             "certificate (no installed manufacturer root)",
    (FIRMWARE_UPDATE, "RevokedCertificate"): "the charger found the signing certificate "
                                             "revoked",
    (FIRMWARE_UPDATE, "Rejected"): "the charger refused the update (one is installing)",
    (DIAGNOSTICS, "Accepted"): "the charger will upload its diagnostics",
    (GET_LOG, "Accepted"): "the charger will upload the log",
    (GET_LOG, "AcceptedCanceled"): "the charger will upload the log; it cancelled an "
                                   "upload in progress",
    (GET_LOG, "Rejected"): "the charger refused to upload the log",
    (INSTALL_CERTIFICATE, "Accepted"): "the charger installed the certificate",
    (INSTALL_CERTIFICATE, "Rejected"): "the charger refused the certificate",
    (INSTALL_CERTIFICATE, "Failed"): "the charger could not install the certificate",
    (DELETE_CERTIFICATE, "Accepted"): "the charger deleted the certificate",
    (DELETE_CERTIFICATE, "Failed"): "the charger did not delete the certificate (e.g. its "
                                    "last root of that type)",
    (DELETE_CERTIFICATE, "NotFound"): "the charger has no such certificate",
    (CERTIFICATE_IDS, "NotFound"): "the charger has no certificate of that type",
    (EXTENDED_TRIGGER, "Accepted"): "the charger will send the message",
    (EXTENDED_TRIGGER, "Rejected"): "the charger refused to send the message",
    (EXTENDED_TRIGGER, "NotImplemented"): "the charger cannot send that message",
}

# The last status of each process (firmware update, upload): the charger is done with it.
FINAL_STATUSES: dict[str, tuple[str, ...]] = {
    FIRMWARE_KIND: ("Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature",
                    "InstallVerificationFailed"),
    SIGNED_FIRMWARE_KIND: ("Installed", "InstallationFailed", "DownloadFailed",
                           "InvalidSignature", "InstallVerificationFailed"),
    DIAGNOSTICS_KIND: ("Uploaded", "UploadFailed"),
    LOG_KIND: ("Uploaded", "UploadFailure", "BadMessage", "NotSupportedOperation",
               "PermissionDenied")}
# The final statuses that mean it worked.
SUCCEEDED = ("Installed", "Uploaded")


def _parsed(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class InvalidCommand(ValueError):
    """A command or its arguments that cannot be sent."""


def _connector(params: dict[str, Any], minimum: int, required: bool = True) -> int | None:
    value = params.get("connector")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidCommand(f"connector must be a whole number from {minimum}, not {value!r}")
    return value


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = params.get(name)
    if value not in choices:
        raise InvalidCommand(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _text(value: Any, name: str, longest: int, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty_ok) or len(value) > longest:
        raise InvalidCommand(f"{name} must be text of {0 if empty_ok else 1} to {longest} "
                             f"characters, not {value!r}")
    return value


def _count(params: dict[str, Any], name: str, largest: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
        raise InvalidCommand(f"{name} must be a whole number from 0 to {largest}, not {value!r}")
    return value


def _time(params: dict[str, Any], name: str) -> str | None:
    """An ISO 8601 time with its UTC offset, kept as text in UTC."""
    value = params.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidCommand(f"{name} must be an ISO 8601 time with its UTC offset, "
                             f"not {value!r}")
    return parsed.astimezone(UTC).isoformat()


def _period(params: dict[str, Any]) -> dict[str, Any]:
    start, stop = _time(params, "start"), _time(params, "stop")
    if start is not None and stop is not None and start >= stop:
        raise InvalidCommand(f"start {start} must be before stop {stop}")
    return {"start": start, "stop": stop, "retries": _count(params, "retries", RETRIES_MAX),
            "retry_interval": _count(params, "retry_interval", RETRY_INTERVAL_MAX)}


def _firmware_params(params: dict[str, Any]) -> dict[str, Any]:
    version, url = params.get("version"), params.get("url")
    if (version is None) == (url is None):
        raise InvalidCommand("give either a published release's version or a URL")
    if version is not None:
        version = _text(version, "version", 50)
    if url is not None:
        url = _text(url, "url", URL_MAX)
        parts = urlsplit(url)
        if parts.scheme not in URL_SCHEMES or not parts.netloc:
            raise InvalidCommand(f"url must be an {'/'.join(URL_SCHEMES)} URL, not {url!r}")
    signed = params.get("signed", False)
    if not isinstance(signed, bool):
        raise InvalidCommand(f"signed must be true or false, not {signed!r}")
    if signed and version is None:
        raise InvalidCommand("a signed update (SignedUpdateFirmware) needs a published "
                             "release's version, not a URL")
    return {"version": version, "url": url, "signed": signed,
            "retrieve_date": _time(params, "retrieve_date"),
            "retries": _count(params, "retries", RETRIES_MAX),
            "retry_interval": _count(params, "retry_interval", RETRY_INTERVAL_MAX)}


def _check_get_log(params: dict[str, Any]) -> dict[str, Any]:
    return {"log_type": _choice(params, "log_type", LOG_TYPES), **_period(params)}


def _hex(params: dict[str, Any], name: str, longest: int) -> str:
    value = _text(params.get(name), name, longest)
    try:
        int(value, 16)
    except ValueError:
        raise InvalidCommand(f"{name} must be hexadecimal, not {value!r}") from None
    return value.lower()


def _check_install_certificate(params: dict[str, Any]) -> dict[str, Any]:
    certificate_type = _choice(params, "certificate_type", CERTIFICATE_TYPES)
    pem = _text(params.get("certificate"), "certificate", CERTIFICATE_MAX)
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidCommand(f"certificate must be one PEM certificate: {exc}") from None
    return {"certificate_type": certificate_type, "certificate": pem}


def _check_delete_certificate(params: dict[str, Any]) -> dict[str, Any]:
    return {"hash_algorithm": _choice(params, "hash_algorithm", HASH_ALGORITHMS),
            "issuer_name_hash": _hex(params, "issuer_name_hash", HASH_MAX),
            "issuer_key_hash": _hex(params, "issuer_key_hash", HASH_MAX),
            "serial_number": _hex(params, "serial_number", SERIAL_MAX)}


def _check_certificate_ids(params: dict[str, Any]) -> dict[str, Any]:
    return {"certificate_type": _choice(params, "certificate_type", CERTIFICATE_TYPES)}


def _check_extended_trigger(params: dict[str, Any]) -> dict[str, Any]:
    return {"message": _choice(params, "message", EXTENDED_TRIGGER_MESSAGES),
            "connector": _connector(params, 1, required=False)}


def _check_reset(params: dict[str, Any]) -> dict[str, Any]:
    return {"type": _choice(params, "type", RESET_TYPES)}


def _check_availability(params: dict[str, Any]) -> dict[str, Any]:
    return {"connector": _connector(params, 0),
            "type": _choice(params, "type", AVAILABILITY_TYPES)}


def _check_config_get(params: dict[str, Any]) -> dict[str, Any]:
    keys = params.get("keys", [])
    if not isinstance(keys, list):
        raise InvalidCommand(f"keys must be a list, not {keys!r}")
    return {"keys": [_text(key, "a key", CONFIG_KEY_MAX) for key in keys]}


def _check_config_set(params: dict[str, Any]) -> dict[str, Any]:
    key = _text(params.get("key"), "key", CONFIG_KEY_MAX)
    if key.casefold() == "authorizationkey":
        # A key set this way would be the charger's new password without the backend
        # knowing it (the charger locked out at its next connect), and it would sit in clear
        # in the command's record and log.
        raise InvalidCommand(
            "AuthorizationKey is the charger's password: give it a new one with the "
            f"{AUTHORIZATION_KEY} command (cp rotate-password), which the backend generates, "
            "sends over TLS and stores")
    return {"key": key,
            "value": _text(params.get("value"), "value", CONFIG_VALUE_MAX, empty_ok=True)}


def _check_trigger(params: dict[str, Any]) -> dict[str, Any]:
    return {"message": _choice(params, "message", TRIGGER_MESSAGES),
            "connector": _connector(params, 1, required=False)}


def _check_nothing(params: dict[str, Any]) -> dict[str, Any]:
    return {}


def _check_unlock(params: dict[str, Any]) -> dict[str, Any]:
    return {"connector": _connector(params, 1)}


def _check_local_list_push(params: dict[str, Any]) -> dict[str, Any]:
    full = params.get("full", False)
    if not isinstance(full, bool):
        raise InvalidCommand(f"full must be true or false, not {full!r}")
    return {"full": full}


@dataclass(frozen=True)
class CommandKind:
    """One kind of operator command: what it does, its arguments' check (returns them in
    their stored form, raises InvalidCommand), an example of them, and the charger's answers
    meaning it did (or will do) what was asked."""

    summary: str
    check: Callable[[dict[str, Any]], dict[str, Any]]
    example: dict[str, Any]
    done: tuple[str, ...] = ("Accepted",)


# Every command an operator can send; the CLI, the queue and the admin API offer these.
KINDS: dict[str, CommandKind] = {
    RESET: CommandKind("Reset the charger (Reset)", _check_reset, {"type": "Soft"}),
    AVAILABILITY: CommandKind(
        "Make the charger (connector 0) or one connector operative or inoperative "
        "(ChangeAvailability)", _check_availability, {"connector": 0, "type": "Inoperative"},
        ("Accepted", "Scheduled")),
    CONFIG_GET: CommandKind("Read configuration keys, all when none are named "
                            "(GetConfiguration)", _check_config_get,
                            {"keys": ["HeartbeatInterval"]}),
    CONFIG_SET: CommandKind("Set a configuration key (ChangeConfiguration)", _check_config_set,
                            {"key": "HeartbeatInterval", "value": "300"},
                            ("Accepted", "RebootRequired")),
    TRIGGER: CommandKind("Ask the charger to send a message now (TriggerMessage)",
                         _check_trigger, {"message": "StatusNotification", "connector": 1}),
    CLEAR_CACHE: CommandKind("Clear the authorization cache (ClearCache)", _check_nothing, {}),
    UNLOCK: CommandKind("Unlock a connector (UnlockConnector)", _check_unlock,
                        {"connector": 1}, ("Unlocked",)),
    LOCAL_LIST_PUSH: CommandKind(
        "Push the local authorization list built from the token database (SendLocalList); "
        "only the changes unless full", _check_local_list_push, {"full": False},
        local_list.DONE),
    FIRMWARE_UPDATE: CommandKind(
        "Install firmware: a published release's version or a URL (UpdateFirmware); "
        "signed: a release published with its signature (SignedUpdateFirmware)",
        _firmware_params, {"version": "1.2.0", "retries": 3, "signed": False},
        ("Accepted", "AcceptedCanceled")),
    DIAGNOSTICS: CommandKind(
        "Have the charger upload its diagnostics to this backend's file server "
        "(GetDiagnostics)", _period, {"start": "2026-01-01T00:00:00+00:00"}),
    GET_LOG: CommandKind(
        "Have the charger upload its diagnostics or security log to this backend's file "
        "server (GetLog)", _check_get_log, {"log_type": "SecurityLog"},
        ("Accepted", "AcceptedCanceled")),
    INSTALL_CERTIFICATE: CommandKind(
        "Install a root certificate on the charger (InstallCertificate)",
        _check_install_certificate,
        {"certificate_type": "CentralSystemRootCertificate",
         "certificate": EXAMPLE_ROOT}),
    DELETE_CERTIFICATE: CommandKind(
        "Delete a root certificate from the charger by its CertificateHashData "
        "(DeleteCertificate)", _check_delete_certificate,
        {"hash_algorithm": "SHA256", "issuer_name_hash": "0a1b", "issuer_key_hash": "2c3d",
         "serial_number": "1f"}),
    CERTIFICATE_IDS: CommandKind(
        "List the root certificates of a type the charger has installed "
        "(GetInstalledCertificateIds)", _check_certificate_ids,
        {"certificate_type": "CentralSystemRootCertificate"}, ("Accepted", "NotFound")),
    EXTENDED_TRIGGER: CommandKind(
        "Ask the charger to send a message now, including SignChargePointCertificate "
        "(ExtendedTriggerMessage)", _check_extended_trigger,
        {"message": "SignChargePointCertificate"}),
    AUTHORIZATION_KEY: CommandKind(
        "Give the charger a new Basic-auth password the backend generates (ChangeConfiguration "
        "AuthorizationKey, over TLS only); kept as its password only when the charger takes "
        "it", _check_nothing, {}, ("Accepted", "RebootRequired")),
}
COMMANDS = tuple(KINDS)


def check_params(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for ``command`` in their stored form; raises InvalidCommand (also for a
    parameter the command does not take)."""
    kind = KINDS.get(command)
    if kind is None:
        raise InvalidCommand(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    if not isinstance(params, dict):
        raise InvalidCommand(f"the parameters must be a JSON object, not {params!r}")
    checked = kind.check(params)
    unknown = sorted(set(params) - set(checked))
    if unknown:
        taken = ", ".join(checked) or "none"
        raise InvalidCommand(f"{command} takes no parameter {', '.join(unknown)} "
                             f"(it takes: {taken})")
    return checked


def outcome(charge_point_id: str, command: str, status: str, detail: str | None = None,
            **extra: Any) -> dict[str, Any]:
    """An outcome object (see the module)."""
    return {"charge_point_id": charge_point_id, "command": command, "status": status,
            "ok": command in KINDS and status in KINDS[command].done,
            "detail": detail or _EXPLAINED.get((command, status),
                                               f"the charger answered {status}"),
            **extra}


class FileUrls(Protocol):
    """Makes the one-time URLs a charger downloads firmware from and uploads files to."""

    async def issue(self, charge_point_id: str, kind: str,
                    release_version: str | None = None) -> tuple[IssuedToken, str]:
        """A new token and its URL; raises NotFound for an unknown charger or release."""
        ...

    async def revoke(self, token: IssuedToken) -> None:
        """Make an issued token unusable (the charger never got its URL)."""
        ...


class OperatorCommandRunner:
    """Sends operator commands to connected chargers. Without ``files`` (no file server)
    firmware updates from a published release and uploads are refused."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer, files: FileUrls | None = None) -> None:
        self._db = db
        self._ocpp = ocpp
        self._files = files
        self._pusher = LocalListPusher(db, ocpp)
        self._send: dict[str, Callable[[str, dict[str, Any]],
                                       Awaitable[dict[str, Any]]]] = {
            RESET: self._reset, AVAILABILITY: self._availability, CONFIG_GET: self._config_get,
            CONFIG_SET: self._config_set, TRIGGER: self._trigger,
            CLEAR_CACHE: self._clear_cache, UNLOCK: self._unlock,
            LOCAL_LIST_PUSH: self._local_list_push, FIRMWARE_UPDATE: self._firmware_update,
            DIAGNOSTICS: self._diagnostics, GET_LOG: self._get_log,
            INSTALL_CERTIFICATE: self._install_certificate,
            DELETE_CERTIFICATE: self._delete_certificate,
            CERTIFICATE_IDS: self._certificate_ids, EXTENDED_TRIGGER: self._extended_trigger,
            AUTHORIZATION_KEY: self._authorization_key}

    async def run(self, charge_point_id: str, command: str,
                  params: dict[str, Any]) -> dict[str, Any]:
        """Send ``command``; the outcome (raises InvalidCommand for bad arguments)."""
        checked = check_params(command, params)
        try:
            result = await self._send[command](charge_point_id, checked)
        except ChargerNotConnected:
            result = outcome(charge_point_id, command, "NotConnected",
                             "the charger is not connected to this backend")
        except TimeoutError:
            result = outcome(charge_point_id, command, "NoAnswer",
                             "the charger did not answer in time")
        except ChargerCallError as exc:
            result = outcome(charge_point_id, command, "CallError",
                             f"the charger answered with an error: {exc}")
        log.info("csms.operator_command", charge_point=charge_point_id, command=command,
                 status=result["status"])
        await self._db(self._db.store.record_charge_point_event, charge_point_id, "command",
                       result)
        return result

    async def _reset(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        return outcome(cp, RESET, await self._ocpp.reset(cp, params["type"]))

    async def _availability(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status = await self._ocpp.change_availability(cp, params["connector"], params["type"])
        return outcome(cp, AVAILABILITY, status)

    async def _config_get(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        keys, unknown = await self._ocpp.get_configuration(cp, params["keys"])
        configuration = [{"key": entry.get("key"), "value": entry.get("value"),
                          "readonly": bool(entry.get("readonly"))} for entry in keys]
        if unknown:
            return outcome(cp, CONFIG_GET, "UnknownKey",
                           f"the charger does not know {', '.join(unknown)}",
                           configuration=configuration, unknown=unknown)
        return outcome(cp, CONFIG_GET, "Accepted", f"the charger reported {len(keys)} key(s)",
                       configuration=configuration, unknown=unknown)

    async def _config_set(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status = await self._ocpp.change_configuration(cp, params["key"], params["value"])
        return outcome(cp, CONFIG_SET, status)

    async def _trigger(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status = await self._ocpp.trigger_message(cp, params["message"], params["connector"])
        return outcome(cp, TRIGGER, status)

    async def _clear_cache(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        return outcome(cp, CLEAR_CACHE, await self._ocpp.clear_cache(cp))

    async def _unlock(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        return outcome(cp, UNLOCK, await self._ocpp.unlock_connector(cp, params["connector"]))

    async def _local_list_push(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        pushed = (await self._pusher.push(cp, params["full"])).to_json()
        return outcome(cp, LOCAL_LIST_PUSH, **{k: v for k, v in pushed.items()
                                               if k != "charge_point_id"})

    async def _with_url(self, cp: str, kind: str, release_version: str | None,
                        send: Callable[[IssuedToken, str], Awaitable[dict[str, Any]]]
                        ) -> dict[str, Any]:
        """Issue a one-time URL and send the request carrying it; the URL is revoked when
        the charger refused the request."""
        if self._files is None:
            raise InvalidCommand("this backend serves no files (no file server configured)")
        if not await self._ocpp.is_connected(cp):
            raise ChargerNotConnected(cp)
        try:
            issued, url = await self._files.issue(cp, kind, release_version)
        except NotFound as exc:
            raise InvalidCommand(str(exc)) from None
        try:
            result = await send(issued, url)
        except ChargerCallError:
            # Refused for sure; a charger that did not answer in time may still use the URL.
            await self._files.revoke(issued)
            raise
        if not result["ok"]:
            await self._files.revoke(issued)
        return {**result, "request_id": issued.id, "url_expires_at": issued.expires_at.isoformat()}

    async def _firmware_update(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        retrieve = (datetime.fromisoformat(params["retrieve_date"]) if params["retrieve_date"]
                    else datetime.now(UTC))

        async def send(url: str) -> dict[str, Any]:
            await self._ocpp.update_firmware(cp, url, retrieve, params["retries"],
                                             params["retry_interval"])
            return outcome(cp, FIRMWARE_UPDATE, "Accepted", version=params["version"],
                           retrieve_date=retrieve.astimezone(UTC).isoformat())

        if params["url"] is not None:
            return await send(params["url"])
        if params["signed"]:
            return await self._signed_firmware_update(cp, params, retrieve)
        return await self._with_url(cp, FIRMWARE_KIND, params["version"],
                                    lambda _issued, url: send(url))

    async def _signed_firmware_update(self, cp: str, params: dict[str, Any],
                                      retrieve: datetime) -> dict[str, Any]:
        """SignedUpdateFirmware of a release published with its signature; the one-time
        URL's id is the request's requestId."""
        release = await self._db(self._db.store.get_release, params["version"])
        if release is not None and release["signature"] is None:
            raise InvalidCommand(f"release {params['version']} was published without a "
                                 "signature; publish it with its signing certificate")

        async def send(issued: IssuedToken, url: str) -> dict[str, Any]:
            assert release is not None
            status = await self._ocpp.signed_update_firmware(
                cp, issued.id, url, retrieve, release["signing_certificate"],
                release["signature"], params["retries"], params["retry_interval"])
            return outcome(cp, FIRMWARE_UPDATE, status, version=params["version"],
                           signed=True, retrieve_date=retrieve.astimezone(UTC).isoformat())

        # An unknown release is refused by the URL's issue, as for an unsigned update.
        return await self._with_url(cp, FIRMWARE_KIND, params["version"], send)

    async def _diagnostics(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        async def send(_issued: IssuedToken, url: str) -> dict[str, Any]:
            file_name = await self._ocpp.get_diagnostics(
                cp, url, _parsed(params["start"]), _parsed(params["stop"]), params["retries"],
                params["retry_interval"])
            return outcome(cp, DIAGNOSTICS, "Accepted", file_name=file_name)

        return await self._with_url(cp, DIAGNOSTICS_KIND, None, send)

    async def _get_log(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        async def send(issued: IssuedToken, url: str) -> dict[str, Any]:
            status, file_name = await self._ocpp.get_log(
                cp, params["log_type"], issued.id, url, _parsed(params["start"]),
                _parsed(params["stop"]), params["retries"], params["retry_interval"])
            return outcome(cp, GET_LOG, status, file_name=file_name,
                           log_type=params["log_type"])

        return await self._with_url(cp, LOG_KIND, None, send)

    async def _install_certificate(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status = await self._ocpp.install_certificate(cp, params["certificate_type"],
                                                      params["certificate"])
        return outcome(cp, INSTALL_CERTIFICATE, status,
                       certificate_type=params["certificate_type"])

    async def _delete_certificate(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        return outcome(cp, DELETE_CERTIFICATE,
                       await self._ocpp.delete_certificate(cp, dict(params)))

    async def _certificate_ids(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status, hash_data = await self._ocpp.get_installed_certificate_ids(
            cp, params["certificate_type"])
        detail = (f"the charger has {len(hash_data)} {params['certificate_type']}(s)"
                  if status == "Accepted" else None)
        return outcome(cp, CERTIFICATE_IDS, status, detail,
                       certificate_type=params["certificate_type"],
                       certificate_hash_data=hash_data)

    async def _extended_trigger(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        status = await self._ocpp.extended_trigger_message(cp, params["message"],
                                                           params["connector"])
        return outcome(cp, EXTENDED_TRIGGER, status)

    async def _authorization_key(self, cp: str, params: dict[str, Any]) -> dict[str, Any]:
        """A generated key, never leaving this process but to the charger: not in the
        request, the outcome or the log. Stored before it is sent (the charger reconnects
        with it right after its answer) and the previous hash put back unless the charger
        took it."""
        point = await self._db(self._db.store.get_charge_point, cp)
        if point is None:
            raise ChargerNotConnected(cp)
        profile = point["security_profile"]
        if not point["connected"] or profile is None:
            raise ChargerNotConnected(cp)
        if profile < 2:
            return outcome(cp, AUTHORIZATION_KEY, "NotSecure",
                           f"the charger is connected with security profile {profile} "
                           "(plain ws): a key sent over it would be no secret; raise it to "
                           "profile 2 first (cp security-migrate)")
        key = generate_password()
        previous = await self._db(self._db.store.replace_password, cp, key)
        status = None
        try:
            status = await self._ocpp.change_configuration(cp, "AuthorizationKey", key)
        finally:
            if status not in KINDS[AUTHORIZATION_KEY].done:
                await self._db(self._db.store.restore_password_hash, cp, previous)
        return outcome(cp, AUTHORIZATION_KEY, status)

    # -- commands asked for through the database --

    async def run_requests(self) -> int:
        """Carry out the requests nobody has taken yet; returns how many."""
        requests = await self._db(self._db.store.claim_operator_commands)
        for request in requests:
            try:
                result = await self.run(request["charge_point_id"], request["command"],
                                        dict(request["params"]))
            except InvalidCommand as exc:
                result = outcome(request["charge_point_id"], request["command"], "Invalid",
                                 str(exc))
            await self._db(self._db.store.finish_operator_command, request["id"], result)
        return len(requests)

    async def serve_requests(self, poll_s: float) -> None:
        """``run_requests`` every ``poll_s`` seconds, until cancelled."""
        while True:
            try:
                await self.run_requests()
            except Exception:
                log.exception("csms.operator_commands_failed")
            await asyncio.sleep(poll_s)
