"""Moving a charger up the OCPP security profiles from the backend (`chargerfw csms cp
security-migrate`), one profile at a time, each step verified before the next.

1 -> 2: install the backend's TLS root as CentralSystemRootCertificate (InstallCertificate)
and find it among the installed ones (GetInstalledCertificateIds); SecurityProfile=2 and wait
for the charger to reconnect over TLS; then a fresh AuthorizationKey, over TLS (a charger
refuses it over plain ws, and the key that crossed plain ws is no secret any more), generated
and sent by the running backend (the operator command ``authorization_key``), and wait for the
charger to reconnect with it. The same step alone rotates the key of a charger on profile 2
(`chargerfw csms cp rotate-password`).

2 -> 3: CpoName when one is given (the O of its CSR); ExtendedTriggerMessage
SignChargePointCertificate, then the charger's CSR is signed by the running backend's fleet
CA (`serve --ca-dir`) and CertificateSigned must be Accepted; SecurityProfile=3 and wait for
the charger to reconnect with its client certificate.

A reconnect is seen as the charger's connection count going up after the change; the
backend stores the security profile each connection had (``ChargerConnection.security_profile``
as the running backend saw it). A step that fails stops the
migration with a message saying what failed; the charger stays on the profile it works on (a
charger that cannot connect with a new profile falls back to its previous one itself; a new
AuthorizationKey it did not reconnect with is replaced by the previous one again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography import x509

from chargerfw.csms.fleet_ca import root_hash_data, same_hash_data
from chargerfw.csms.ocpp_server import BACKEND_SECURITY_EVENT
from chargerfw.csms.store import Store

CS_ROOT = "CentralSystemRootCertificate"
POLL_S = 0.2

# Sends one operator command (operator_commands.KINDS) to the charger: its outcome.
Sender = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Step:
    """One verified step of a migration (``ok``) or the one it stopped at."""

    profile: int  # the profile this step works towards
    name: str
    ok: bool
    detail: str


class MigrationStopped(Exception):
    """A step failed; the migration did not go on. ``step`` is the failed one."""

    def __init__(self, step: Step) -> None:
        super().__init__(step.detail)
        self.step = step


class SecurityMigration:
    """Raises one charger's security profile through ``send`` (the running backend holds its
    connection) and reads what the backend stored of it from ``store``."""

    def __init__(self, store: Store, send: Sender, charge_point_id: str, *,
                 central_system_root: str | None = None, cpo_name: str | None = None,
                 reconnect_timeout_s: float = 120.0, certificate_timeout_s: float = 120.0,
                 report: Callable[[Step], None] = lambda _step: None) -> None:
        self._store = store
        self._send = send
        self.charge_point_id = charge_point_id
        self._root_pem = central_system_root
        self._cpo_name = cpo_name
        self._reconnect_timeout_s = reconnect_timeout_s
        self._certificate_timeout_s = certificate_timeout_s
        self._report = report

    async def run(self, target: int) -> int:
        """Move the charger to ``target`` (2 or 3); returns the profile it is on. Raises
        MigrationStopped at the first step that fails."""
        current = await self._current_profile()
        if current >= target:
            self._ok(current, "already", f"the charger is on security profile {current}")
            return current
        if current < 2:
            await self._to_profile_2()
        if target == 3:
            await self._to_profile_3()
        return target

    # -- the steps --

    async def _to_profile_2(self) -> None:
        if self._root_pem is None:
            self._fail(2, "root", "profile 2 needs the backend's TLS root certificate to "
                                  "install (--root PEM)")
        outcome = await self._command(2, "install root", "install_certificate", {
            "certificate_type": CS_ROOT, "certificate": self._root_pem})
        self._ok(2, "install root", f"InstallCertificate {CS_ROOT}: {outcome['status']}")
        root = x509.load_pem_x509_certificate(self._root_pem.encode())
        outcome = await self._command(2, "check root", "certificate_ids",
                                      {"certificate_type": CS_ROOT})
        installed = outcome.get("certificate_hash_data") or []
        if not any(same_hash_data(root_hash_data(root), entry) for entry in installed):
            self._fail(2, "check root", f"the root is not among the charger's {len(installed)} "
                                        f"installed {CS_ROOT}(s)")
        self._ok(2, "check root", "GetInstalledCertificateIds lists the root")
        await self._raise_to(2)
        await self._new_authorization_key()

    async def _new_authorization_key(self) -> None:
        await self.rotate_authorization_key(2)
        self._ok(2, "authorization key", "a fresh AuthorizationKey is the charger's password; "
                                         "it reconnected with it over TLS")

    async def rotate_authorization_key(self, profile: int | None = None) -> None:
        """Give the charger a new AuthorizationKey the running backend generates (it never
        passes through here), and wait for the charger to reconnect with it on its current
        security profile (``profile``: the one it must be on; None: the one it is on). One it
        did not reconnect with is replaced by the previous key again."""
        if profile is None:
            profile = await self._current_profile()
        previous = await asyncio.to_thread(self._store.password_hash, self.charge_point_id)
        after = await self._connection_count()
        await self._command(profile, "authorization key", "authorization_key", {})
        try:
            await self._reconnected(profile, after, "authorization key",
                                    "with the new AuthorizationKey")
        except MigrationStopped as stopped:
            await asyncio.to_thread(self._store.restore_password_hash, self.charge_point_id,
                                    previous)
            raise MigrationStopped(Step(profile, stopped.step.name, False,
                                        f"{stopped.step.detail}; the previous key is the "
                                        "charger's password again")) from None

    async def _to_profile_3(self) -> None:
        if self._cpo_name is not None:
            outcome = await self._command(3, "cpo name", "config_set",
                                          {"key": "CpoName", "value": self._cpo_name})
            self._ok(3, "cpo name", f"CpoName {self._cpo_name!r}: {outcome['status']}")
        certificates = await asyncio.to_thread(self._store.charger_certificates,
                                               self.charge_point_id)
        newest_before = certificates[0]["id"] if certificates else 0
        events_before = await self._last_event_id()
        await self._command(3, "certificate", "extended_trigger",
                            {"message": "SignChargePointCertificate"})
        issued = await self._certificate_answered(newest_before, events_before)
        self._ok(3, "certificate", f"certificate {issued['serial']} (valid until "
                                   f"{issued['not_after']:%Y-%m-%d}) signed and Accepted")
        await self._raise_to(3)

    async def _raise_to(self, profile: int) -> None:
        after = await self._connection_count()
        await self._command(profile, "raise profile", "config_set",
                            {"key": "SecurityProfile", "value": str(profile)})
        await self._reconnected(profile, after, "raise profile",
                                "with its client certificate" if profile == 3 else "over TLS")
        self._ok(profile, "raise profile", f"the charger reconnected with security profile "
                                           f"{profile}")

    # -- what is waited for --

    async def _reconnected(self, profile: int, after: int, step: str, how: str) -> None:
        """Wait for the charger's next connection after its ``after``-th: it must be with
        ``profile``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect_timeout_s
        while loop.time() < deadline:
            point = await asyncio.to_thread(self._store.get_charge_point, self.charge_point_id)
            if point is not None and point["connection_count"] > after:
                seen = point["security_profile"]
                if seen == profile:
                    return
                self._fail(profile, step, f"the charger reconnected with security profile "
                                          f"{seen}, not {profile}: it could not connect {how} "
                                          "and fell back")
            await asyncio.sleep(POLL_S)
        self._fail(profile, step, f"the charger did not reconnect {how} within "
                                  f"{self._reconnect_timeout_s:g} s")

    async def _certificate_answered(self, newest_before: int, events_before: int
                                    ) -> dict[str, Any]:
        """The first certificate signed after ``newest_before`` once the charger answered
        its CertificateSigned; stops on a refused CSR or a refused certificate."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._certificate_timeout_s
        while loop.time() < deadline:
            refused = await asyncio.to_thread(self._store.charge_point_events,
                                              self.charge_point_id, events_before, 1,
                                              BACKEND_SECURITY_EVENT)
            if refused:
                self._fail(3, "certificate", f"the backend refused the charger's CSR: "
                                             f"{refused[0]['data'].get('detail')}")
            rows = await asyncio.to_thread(self._store.charger_certificates,
                                           self.charge_point_id)
            new = [dict(r) for r in rows if r["id"] > newest_before and r["status"] is not None]
            if new:
                issued = new[-1]
                if issued["status"] != "Accepted":
                    self._fail(3, "certificate", f"the charger answered CertificateSigned for "
                                                 f"certificate {issued['serial']} with "
                                                 f"{issued['status']}")
                return issued
            await asyncio.sleep(POLL_S)
        self._fail(3, "certificate", f"no certificate was signed and answered within "
                                     f"{self._certificate_timeout_s:g} s (does the running "
                                     "backend have a fleet CA, serve --ca-dir?)")

    # -- helpers --

    async def _current_profile(self) -> int:
        point = await asyncio.to_thread(self._store.get_charge_point, self.charge_point_id)
        if point is None:
            self._fail(0, "start", f"unknown charge point {self.charge_point_id!r}")
        profile = point["security_profile"]
        if not point["connected"] or profile is None:
            self._fail(0, "start", "the charger is not connected")
        if profile == 0:
            self._fail(0, "start", "the charger connects without credentials (profile 0); "
                                   "give it a password first (security profile 1)")
        return int(profile)

    async def _connection_count(self) -> int:
        point = await asyncio.to_thread(self._store.get_charge_point, self.charge_point_id)
        return int(point["connection_count"]) if point is not None else 0

    async def _last_event_id(self) -> int:
        rows = await asyncio.to_thread(self._store.charge_point_event_history,
                                       self.charge_point_id, None, 1)
        return int(rows[0]["id"]) if rows else 0

    async def _command(self, profile: int, step: str, command: str,
                       params: dict[str, Any]) -> dict[str, Any]:
        outcome = await self._send(command, params)
        if not outcome.get("ok"):
            self._fail(profile, step, f"{outcome.get('status')}: {outcome.get('detail')}")
        return outcome

    def _ok(self, profile: int, name: str, detail: str) -> None:
        self._report(Step(profile, name, True, detail))

    def _fail(self, profile: int, name: str, detail: str) -> NoReturn:
        step = Step(profile, name, False, detail)
        self._report(step)
        raise MigrationStopped(step)
