"""`chargerfw csms` commands: the companion backend (OCPP central system + OCPI CPO API).

The backend's dependencies come with the ``csms`` extra (``pip install 'chargerfw[csms]'``);
they are imported inside the commands so the station's own commands never need them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import click


def _default_db() -> str:
    from chargerfw.csms.paths import default_database

    return default_database()


db_option = click.option(
    "--db", default=_default_db, envvar="CHARGERFW_CSMS_DB",
    show_default="csms.sqlite3 in $STATE_DIRECTORY, else $XDG_DATA_HOME/chargerfw, else "
                 "~/.local/share/chargerfw",
    help="SQLite file path, or a postgresql://user:pass@host/db URL")
country_option = click.option(
    "--country-code", default="NL", show_default=True, envvar="CHARGERFW_CSMS_COUNTRY_CODE",
    help="our OCPI country code (ISO 3166-1 alpha-2)")
party_option = click.option(
    "--party-id", default="CFW", show_default=True, envvar="CHARGERFW_CSMS_PARTY_ID",
    help="our OCPI party id (3 characters)")
evse_id_format_option = click.option(
    "--evse-id-format", default=None, envvar="CHARGERFW_CSMS_EVSE_ID_FORMAT",
    help="how EVSEs given without an EVSE id are named, in eMI3 form; fields {country_code}, "
         "{party_id}, {uid}, {charge_point}, {connector} (default "
         "{country_code}*{party_id}*E{uid})")


allow_network_option = click.option(
    "--allow-outbound-network", "allowed_networks", multiple=True, metavar="CIDR",
    envvar="CHARGERFW_CSMS_ALLOW_OUTBOUND_NETWORKS",
    help="a non-public network partners' URLs may lead to (e.g. 127.0.0.0/8 on a bench); "
         "repeatable. Without it only public addresses are called")


def _url_policy(allowed_networks: Sequence[str]) -> Any:
    from chargerfw.csms.urlpolicy import UrlPolicy

    try:
        return UrlPolicy.allowing(allowed_networks)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-outbound-network") from None


def _cpo(country_code: str, party_id: str, name: str = "chargerfw CSMS",
         currency: str = "EUR", evse_id_format: str | None = None) -> Any:
    from chargerfw.csms.store import CpoIdentity
    from chargerfw.csms.store.values import DEFAULT_EVSE_ID_FORMAT

    if len(country_code) != 2 or not country_code.isalpha():
        raise click.BadParameter("two letters, e.g. NL", param_hint="--country-code")
    if len(party_id) != 3 or not party_id.isalnum():
        raise click.BadParameter("three letters or digits", param_hint="--party-id")
    return CpoIdentity(country_code.upper(), party_id.upper(), name, currency.upper(),
                       evse_id_format or DEFAULT_EVSE_ID_FORMAT)


def _open_store(db: str, cpo: Any) -> Any:
    """Open (and migrate) the database; exits with a message when it cannot."""
    from sqlalchemy.exc import SQLAlchemyError

    from chargerfw.csms.db import DatabaseUrlError, create_db_engine, upgrade_database
    from chargerfw.csms.store import Store

    try:
        engine = create_db_engine(db)
        upgrade_database(engine)
    except (DatabaseUrlError, SQLAlchemyError) as exc:
        click.echo(f"error: cannot open database {db!r}: {exc}", err=True)
        raise SystemExit(2) from None
    return Store(engine, cpo)


def _run_store_action(action: Callable[[], Any]) -> Any:
    from chargerfw.csms.store import StoreError

    try:
        return action()
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


@click.group()
def csms() -> None:
    """The companion backend: OCPP 1.6J central system with an OCPI 2.2.1 CPO API."""


@csms.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--ocpp-port", default=9000, show_default=True, type=click.IntRange(0, 65535),
              help="OCPP WebSocket port (chargers connect to ws://HOST:PORT/ocpp/<id>, "
                   "wss:// with --tls-cert)")
@click.option("--api-port", default=9001, show_default=True, type=click.IntRange(0, 65535),
              help="OCPI HTTP API port")
@click.option("--auto-register/--no-auto-register", default=False, show_default=True,
              help="accept unknown charge points and register them on first connect")
@click.option("--public-url", default=None,
              help="base URL partners use to reach the API (default http://HOST:API-PORT, "
                   "https with --tls-cert)")
@country_option
@party_option
@click.option("--name", default="chargerfw CSMS", show_default=True, help="our business name")
@click.option("--currency", default="EUR", show_default=True,
              help="currency of sessions without a tariff")
@click.option("--heartbeat-interval", default=300, show_default=True,
              type=click.IntRange(10, 86400), help="seconds, sent in BootNotification")
@click.option("--max-reservation-minutes", default=120, show_default=True,
              type=click.IntRange(1, 7 * 24 * 60),
              help="the furthest ahead an eMSP's reservation may expire")
@click.option("--offline-grace", default=300, show_default=True,
              type=click.IntRange(10, 86400), envvar="CHARGERFW_CSMS_OFFLINE_GRACE",
              help="seconds a charger may be disconnected (or late with its heartbeat) "
                   "before partners see its EVSEs UNKNOWN")
@allow_network_option
@click.option("--token-pull-interval", default=6 * 3600, show_default=True,
              type=click.IntRange(0, 30 * 86400),
              help="seconds between pulls of eMSPs' token changes (0: never)")
@click.option("--hub-pull-interval", default=3600, show_default=True,
              type=click.IntRange(0, 30 * 86400),
              help="seconds between pulls of hubs' party lists (0: never)")
@click.option("--files-port", default=9002, show_default=True, type=click.IntRange(0, 65535),
              help="HTTP port chargers download firmware from and upload diagnostics to")
@click.option("--files-url", default=None,
              help="base URL chargers reach the file server at (default "
                   "http://HOST:FILES-PORT, https with --tls-cert)")
@click.option("--data-dir", default=None, envvar="CHARGERFW_CSMS_DATA_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="where published firmware and uploads are kept (default: beside a SQLite "
                   "database, DB.files; csms-files in the default database's directory with "
                   "PostgreSQL)")
@click.option("--max-upload-mb", default=100, show_default=True, type=click.IntRange(1, 100000),
              help="the largest diagnostics or log upload taken, in MiB")
@click.option("--file-url-hours", default=24.0, show_default=True,
              type=click.FloatRange(0.01, 24 * 30),
              help="how long a one-time download or upload URL stays valid")
@click.option("--admin-port", default=None, type=click.IntRange(0, 65535),
              envvar="CHARGERFW_CSMS_ADMIN_PORT",
              help="port of the admin HTTP API (off when not given); its tokens come from "
                   "`chargerfw csms admin token create`")
@click.option("--admin-host", default="127.0.0.1", show_default=True,
              envvar="CHARGERFW_CSMS_ADMIN_HOST", help="address the admin API listens on")
@click.option("--tls-cert", default=None, envvar="CHARGERFW_CSMS_TLS_CERT",
              type=click.Path(dir_okay=False, path_type=Path),
              help="server certificate chain (PEM, leaf first): OCPP becomes wss, the other "
                   "ports https")
@click.option("--tls-key", default=None, envvar="CHARGERFW_CSMS_TLS_KEY",
              type=click.Path(dir_okay=False, path_type=Path),
              help="its private key (PEM)")
@click.option("--tls-client-ca", default=None, envvar="CHARGERFW_CSMS_TLS_CLIENT_CA",
              type=click.Path(dir_okay=False, path_type=Path),
              help="CA of chargers' client certificates: a charger presenting one (CN = its "
                   "id) needs no Basic auth (security profile 3)")
@click.option("--allow-plain", is_flag=True, envvar="CHARGERFW_CSMS_ALLOW_PLAIN",
              help="serve plain ws/http on an address other than loopback (without TLS)")
@click.option("--ca-dir", default=None, envvar="CHARGERFW_CSMS_CA_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="the fleet CA (`chargerfw csms ca init`) that signs chargers' CSRs "
                   "(SignCertificate); without it they are Rejected")
@click.option("--cpo-name", default=None, envvar="CHARGERFW_CSMS_CPO_NAME",
              help="the O a charger's CSR must carry (its CpoName key); any when not given")
@click.option("--plain-ocpp-port", default=None, type=click.IntRange(0, 65535),
              help="with TLS, also serve OCPP as plain ws on this port, for chargers still "
                   "on security profile 0 or 1 (loopback unless --allow-plain)")
@click.option("--charger-cert-days", default=365, show_default=True,
              type=click.IntRange(1, 3650), help="how long a charger certificate is valid")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              envvar="CHARGERFW_CSMS_WORKERS",
              help="backend processes sharing the ports (SO_REUSEPORT) and the database; "
                   "more than one needs PostgreSQL")
@click.option("--worker-lease", default=10.0, show_default=True,
              type=click.FloatRange(1.0, 300.0), envvar="CHARGERFW_CSMS_WORKER_LEASE",
              help="with PostgreSQL: seconds after which a backend process that stopped "
                   "renewing its lease counts as dead (its chargers as disconnected, its "
                   "leadership taken over); renewed every fifth of it")
def serve(db: str, host: str, ocpp_port: int, api_port: int, auto_register: bool,
          public_url: str | None, country_code: str, party_id: str, name: str,
          currency: str, heartbeat_interval: int, max_reservation_minutes: int,
          offline_grace: int, allowed_networks: Sequence[str], token_pull_interval: int,
          hub_pull_interval: int, files_port: int, files_url: str | None,
          data_dir: Path | None, max_upload_mb: int, file_url_hours: float,
          admin_port: int | None, admin_host: str, tls_cert: Path | None,
          tls_key: Path | None, tls_client_ca: Path | None, allow_plain: bool,
          ca_dir: Path | None, cpo_name: str | None, plain_ocpp_port: int | None,
          charger_cert_days: int, workers: int, worker_lease: float) -> None:
    """Run the OCPP server, the OCPI API, the file server for chargers and (with
    --admin-port) the admin API in one process (Ctrl-C stops it), or in --workers processes
    that share the ports and a PostgreSQL database (SIGTERM stops them all).

    Without --tls-cert/--tls-key every port is plain, which only loopback addresses get
    unless --allow-plain."""
    from chargerfw.csms.db import DatabaseUrlError
    from chargerfw.csms.fleet_ca import CaError
    from chargerfw.csms.server import CsmsSettings, RunningCsms, serve_forever
    from chargerfw.csms.tls import TlsFiles, TlsSetupError
    from chargerfw.csms.workers import Supervisor, WorkersRefused, check_workers

    _url_policy(allowed_networks)  # refuse a bad network before starting
    try:
        check_workers(db, workers)
    except (WorkersRefused, DatabaseUrlError) as exc:
        raise click.UsageError(str(exc)) from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if tls_client_ca is not None and tls_cert is None:
        raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = TlsFiles(tls_cert, tls_key, tls_client_ca) \
        if tls_cert is not None and tls_key is not None else None
    settings = CsmsSettings(db=db, host=host, ocpp_port=ocpp_port, api_port=api_port,
                            auto_register=auto_register, public_url=public_url,
                            cpo=_cpo(country_code, party_id, name, currency),
                            heartbeat_interval=heartbeat_interval,
                            max_reservation_s=max_reservation_minutes * 60.0,
                            offline_grace_s=float(offline_grace),
                            outbound_allowed_networks=tuple(allowed_networks),
                            token_pull_interval_s=float(token_pull_interval),
                            hub_pull_interval_s=float(hub_pull_interval),
                            files_port=files_port, files_url=files_url,
                            data_dir=str(data_dir) if data_dir is not None else None,
                            max_upload_bytes=max_upload_mb * 1024 * 1024,
                            file_url_valid_s=file_url_hours * 3600,
                            admin_port=admin_port, admin_host=admin_host, tls=tls,
                            allow_plain=allow_plain,
                            ca_dir=str(ca_dir) if ca_dir is not None else None,
                            cpo_name=cpo_name, charger_certificate_days=charger_cert_days,
                            plain_ocpp_port=plain_ocpp_port,
                            worker_lease_s=worker_lease, worker_renew_s=worker_lease / 5)

    def ready(running: RunningCsms) -> None:
        if public_url is None and host in ("0.0.0.0", "::"):
            click.echo("warning: listening on all addresses; give --public-url so partners "
                       "get a reachable address in versions and Link headers", err=True)
        click.echo(f"OCPP  {running.ocpp_url}/<charge_point_id>")
        if running.plain_ocpp_url is not None:
            click.echo(f"OCPP  {running.plain_ocpp_url}/<charge_point_id> (security profile "
                       "0/1 until migrated)")
        click.echo(f"OCPI  {running.api_url}/ocpi/versions")
        click.echo(f"open  {running.api_url}/opendata/locations")
        if running.files is not None:
            click.echo(f"files {running.files.settings.base_url} (data in "
                       f"{running.files.settings.data_dir})")
        if running.admin_url is not None:
            click.echo(f"admin {running.admin_url}/docs")
        if running.plain_hosts:
            click.echo(f"warning: plain ws/http on {', '.join(running.plain_hosts)} "
                       f"(--allow-plain): passwords and charging data cross the network "
                       f"unencrypted", err=True)

    try:
        if workers > 1:
            raise SystemExit(Supervisor(settings, workers, click.echo).run())
        asyncio.run(serve_forever(settings, ready))
    except (TlsSetupError, CaError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except OSError as exc:
        click.echo(f"error: cannot listen: {exc}", err=True)
        raise SystemExit(2) from None


# --- the fleet CA -----------------------------------------------------------------------------

@csms.group()
def ca() -> None:
    """The fleet CA that signs chargers' certificates (`serve --ca-dir`)."""


@ca.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", "common_name", default="chargerfw fleet CA", show_default=True,
              help="the new CA's CN")
@click.option("--organization", default=None, help="the new CA's O")
@click.option("--days", default=3650, show_default=True, type=click.IntRange(1, 36500),
              help="how long the new CA is valid")
@click.option("--cert", "existing_cert", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="use this existing CA certificate (PEM; then the ones above it) instead")
@click.option("--key", "existing_key", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the existing CA's private key (PEM, unencrypted)")
def ca_init(directory: Path, common_name: str, organization: str | None, days: int,
            existing_cert: Path | None, existing_key: Path | None) -> None:
    """Make DIRECTORY the fleet CA: a new EC P-256 CA (ca.pem, and ca-key.pem with mode
    0600), or an existing CA's certificate and key checked and copied in."""
    from datetime import timedelta

    from chargerfw.csms.fleet_ca import CaError, fingerprint, init_ca

    if (existing_cert is None) != (existing_key is None):
        raise click.UsageError("--cert and --key go together")
    try:
        cert = init_ca(directory, common_name=common_name, organization=organization,
                       validity=timedelta(days=days),
                       existing=(existing_cert, existing_key)
                       if existing_cert is not None and existing_key is not None else None)
    except CaError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"fleet CA {cert.subject.rfc4514_string()} in {directory} (valid until "
               f"{cert.not_valid_after_utc:%Y-%m-%d}, SHA-256 {fingerprint(cert)})")
    click.echo(f"serve with: chargerfw csms serve --ca-dir {directory} "
               f"--tls-client-ca {directory}/ca.pem ...")


# --- the admin API's tokens -------------------------------------------------------------------

@csms.group()
def admin() -> None:
    """The admin HTTP API (`serve --admin-port`): its tokens."""


@admin.group("token")
def admin_token() -> None:
    """Tokens for the admin API (separate from OCPI partners' tokens)."""


@admin_token.command("create")
@db_option
@click.option("--name", default=None,
              help="what the token is for, logged with every command sent with it "
                   "(default token-<n>)")
def admin_token_create(db: str, name: str | None) -> None:
    """Make a new token and print it once (only a hash of it is stored)."""
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    name, token = _run_store_action(lambda: store.create_admin_token(name))
    click.echo(f"admin token {name!r} (shown once; send it as 'Authorization: Bearer "
               f"<token>'):", err=True)
    click.echo(token)


@admin_token.command("list")
@db_option
def admin_token_list(db: str) -> None:
    """The tokens: name, when made, when revoked."""
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    click.echo(_table(["name", "created (UTC)", "revoked (UTC)"], [
        [t["name"], t["created_at"], t["revoked_at"]] for t in store.list_admin_tokens()]))


@admin_token.command("revoke")
@click.argument("name")
@db_option
def admin_token_revoke(name: str, db: str) -> None:
    """Revoke the token NAME: the admin API refuses it from now on."""
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    revoked = _run_store_action(lambda: store.revoke_admin_token(name))
    click.echo(f"revoked {name}" if revoked else f"{name} was revoked already")


# --- charge points ----------------------------------------------------------------------------

@csms.group()
def charger() -> None:
    """Register charge points."""


@charger.command("add")
@click.argument("charge_point_id")
@db_option
@country_option
@party_option
@click.option("--password", default=None, envvar="CHARGERFW_CSMS_CP_PASSWORD",
              help="HTTP Basic password the charger sends, chosen by you (stored as a scrypt "
                   "hash)")
@click.option("--generate-password", is_flag=True,
              help="the backend generates the password (a random 20-byte AuthorizationKey, "
                   "printed once: configure the charger with it; stored as a fast hash, so "
                   "reconnects cost no scrypt)")
@click.option("--no-password", is_flag=True, help="let it connect without Basic auth")
@click.option("--location-id", required=True, help="OCPI location id (created if new)")
@click.option("--name", default=None, help="location name")
@click.option("--address", default=None, help="street and number")
@click.option("--city", default=None)
@click.option("--postal-code", default=None)
@click.option("--country", default=None, help="ISO 3166-1 alpha-3, e.g. NLD")
@click.option("--coordinates", default=None, metavar="LAT,LON",
              help="e.g. 52.08917,5.11028 (5 to 7 decimals)")
@click.option("--time-zone", default=None, help="IANA zone, e.g. Europe/Amsterdam")
@click.option("--unpublished", is_flag=True, help="keep the location out of the open data")
@click.option("--evse", "evse_args", multiple=True, metavar="UID[=EVSE_ID]",
              help="one per OCPP connector, in connector order (default: <id>-1)")
@click.option("--standard", default="IEC_62196_T2", show_default=True,
              help="OCPI ConnectorType")
@click.option("--format", "connector_format", default="SOCKET", show_default=True,
              type=click.Choice(["SOCKET", "CABLE"]))
@click.option("--power-type", default="AC_3_PHASE", show_default=True,
              type=click.Choice(["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE",
                                 "DC"]))
@click.option("--max-voltage", default=400, show_default=True, type=click.IntRange(1, 2000))
@click.option("--max-amperage", default=32, show_default=True, type=click.IntRange(1, 1000))
@click.option("--max-power", default=None, type=click.IntRange(1, 10_000_000),
              help="max electric power in W")
@click.option("--tariff", "tariff_id", default=None, help="tariff id pricing its connectors")
@click.option("--rfid-reader/--no-rfid-reader", default=True, show_default=True,
              help="whether drivers can start with a card there (EVSE capability RFID_READER)")
@evse_id_format_option
def charger_add(charge_point_id: str, db: str, country_code: str, party_id: str,
                password: str | None, generate_password: bool, no_password: bool,
                location_id: str, name: str | None,
                address: str | None, city: str | None, postal_code: str | None,
                country: str | None, coordinates: str | None, time_zone: str | None,
                unpublished: bool, evse_args: Sequence[str], standard: str,
                connector_format: str, power_type: str, max_voltage: int, max_amperage: int,
                max_power: int | None, tariff_id: str | None, rfid_reader: bool,
                evse_id_format: str | None) -> None:
    """Register CHARGE_POINT_ID with its location, EVSEs and connectors.

    A charge point that is registered already without EVSEs (one that auto-registered on
    first connect) gets them attached; its password stays unless --password,
    --generate-password or --no-password is given. One that has EVSEs already is refused.
    """
    from chargerfw.csms.charger_registration import (
        RegistrationError,
        option_label,
        registration,
    )

    store = _open_store(db, _cpo(country_code, party_id, evse_id_format=evse_id_format))
    attach = store.get_charge_point(charge_point_id) is not None
    fields = {"charge_point_id": charge_point_id, "password": password,
              "generate_password": generate_password, "no_password": no_password,
              "location_id": location_id, "name": name,
              "address": address, "city": city, "postal_code": postal_code,
              "country": country, "coordinates": coordinates, "time_zone": time_zone,
              "unpublished": unpublished, "evses": list(evse_args), "standard": standard,
              "format": connector_format, "power_type": power_type,
              "max_voltage": max_voltage, "max_amperage": max_amperage,
              "max_power": max_power, "tariff": tariff_id, "rfid_reader": rfid_reader}
    try:
        # Attaching keeps a self-registered charger's password unless one is given.
        item = registration(fields, store.get_location, password_required=not attach,
                            label=option_label)
    except RegistrationError as exc:
        raise click.UsageError(str(exc)) from None
    location, evses = item.location, list(item.evses)
    if attach:
        _run_store_action(lambda: store.attach_charge_point(
            charge_point_id, location, evses, tariff_id, password=item.password,
            clear_password=no_password, rfid_reader=rfid_reader))
    else:
        _run_store_action(lambda: store.add_charge_point(
            charge_point_id, item.password, location, evses, tariff_id, rfid_reader))
    click.echo(f"{'attached' if attach else 'registered'} {charge_point_id} at {location_id} "
               f"with {len(evses)} EVSE(s): {', '.join(e.uid for e in evses)}")
    if item.generated_password is not None:
        click.echo(f"password (AuthorizationKey) of {charge_point_id}, shown this once: "
                   f"{item.generated_password}")


@charger.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@country_option
@party_option
@evse_id_format_option
def charger_import(file: Path, db: str, country_code: str, party_id: str,
                   evse_id_format: str | None) -> None:
    """Register many chargers from FILE in one go: a CSV file (a header row of field names)
    or a TOML file of [[charger]] tables, with the fields of `charger add` (charge_point_id,
    password, generate_password (printed once, as CSV) or no_password, location_id and a new
    location's address, city, country, coordinates, time_zone; evses as UID[=EVSE_ID]
    separated by ';' in CSV; standard, format, power_type, max_voltage, max_amperage,
    max_power, tariff, rfid_reader). All are checked first and registered in one
    transaction: a bad row registers none."""
    from chargerfw.csms.charger_registration import RegistrationError, read_registrations

    store = _open_store(db, _cpo(country_code, party_id, evse_id_format=evse_id_format))
    try:
        items = read_registrations(file.name, file.read_bytes(), store.get_location)
    except RegistrationError as exc:
        click.echo(f"error: {file}: {exc}", err=True)
        raise SystemExit(2) from None
    _run_store_action(lambda: store.add_charge_points([
        (i.charge_point_id, i.password, i.location, i.evses, i.tariff_id, i.rfid_reader)
        for i in items]))
    click.echo(f"registered {len(items)} charger(s) with "
               f"{sum(len(i.evses) for i in items)} EVSE(s) from {file}")
    generated = [(i.charge_point_id, i.generated_password) for i in items
                 if i.generated_password is not None]
    if generated:
        click.echo(f"passwords (AuthorizationKeys) generated for {len(generated)} charger(s), "
                   "shown this once, as CSV:")
        click.echo("charge_point_id,password")
        for charge_point_id, key in generated:
            click.echo(f"{charge_point_id},{key}")


@charger.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def charger_list(db: str, as_json: bool) -> None:
    """List registered charge points, their EVSEs and last known statuses (as `cp list`)."""
    _print_charge_points(db, None, as_json)


def _auth_shown(point: dict[str, Any]) -> str:
    """How the charger authenticates: its client certificate (security profile 3), Basic
    auth, or nothing."""
    if point["client_certificate_required"]:
        return "certificate"
    return "basic" if point["password"] else "none"


def _print_charge_points(db: str, charge_point_id: str | None, as_json: bool) -> None:
    """Every charge point (``charge_point_id`` None) or one with its latest events."""
    from chargerfw.csms.charge_point_view import charge_points_view

    store = _open_store(db, _cpo("NL", "CFW"))
    points = charge_points_view(store, charge_point_id)
    if charge_point_id is not None and not points:
        click.echo(f"error: unknown charge point {charge_point_id!r}", err=True)
        raise SystemExit(2)
    if as_json:
        click.echo(json.dumps(points[0] if charge_point_id else points, indent=2))
        return
    click.echo(_table(["charge point", "location", "auth", "EVSEs (connector:status)",
                       "firmware", "connection", "last seen"], [
        [p["id"], p["location_id"] or "-", _auth_shown(p),
         " ".join(f"{e['uid']}({e['ocpp_connector_id']}:{e['status']})" for e in p["evses"])
         or "-", p["firmware_version"] or "",
         "offline" if p["offline"] else "connected" if p["connected"] else "-",
         p["last_seen"] or ""] for p in points]))
    if charge_point_id is None:
        return
    point = points[0]
    if point["security_profile"] is not None:
        click.echo(f"security profile (latest connection): {point['security_profile']}")
    if point["certificate"] is not None:
        cert = point["certificate"]
        click.echo(f"certificate: serial {cert['serial']}, valid until {cert['not_after']} "
                   f"(SHA-256 {cert['fingerprint'][:16]}...)")
    for kind, rows in points[0]["file_statuses"].items():
        if rows:
            last = rows[-1]
            earlier = ", ".join(row["status"] for row in rows[-6:-1])
            request = f" (request {last['request_id']})" if last["request_id"] else ""
            click.echo(f"{kind.replace('_', ' ')}: {last['status']}{request} at "
                       f"{last['reported_at']}{'; before: ' + earlier if earlier else ''}")
    files = points[0]["received_files"]
    if files:
        click.echo(f"uploaded files: {len(files)}, the newest {files[-1]['path']}")
    if points[0]["latest_events"]:
        click.echo("\nlatest events:")
        click.echo(_table(["id", "at", "kind", "status", "detail"], [
            [e["id"], e["at"], e["kind"], e["data"].get("status", ""),
             e["data"].get("detail", "")] for e in points[0]["latest_events"]]))


@charger.command("set")
@click.argument("charge_point_id")
@db_option
@country_option
@party_option
@click.option("--rfid-reader/--no-rfid-reader", required=True,
              help="whether drivers can start with a card there (EVSE capability RFID_READER)")
def charger_set(charge_point_id: str, db: str, country_code: str, party_id: str,
                rfid_reader: bool) -> None:
    """Change what partners are told CHARGE_POINT_ID supports (its locations are pushed)."""
    store = _open_store(db, _cpo(country_code, party_id))
    _run_store_action(lambda: store.set_rfid_reader(charge_point_id, rfid_reader))
    click.echo(f"{charge_point_id}: {'has' if rfid_reader else 'has no'} RFID reader")


@charger.command("client-certificate")
@click.argument("charge_point_id")
@db_option
@click.option("--required/--not-required", required=True,
              help="--not-required lets the charger connect with Basic auth again (it was "
                   "set when it first connected with a client certificate)")
def charger_client_certificate(charge_point_id: str, db: str, required: bool) -> None:
    """Whether CHARGE_POINT_ID must present its client certificate (security profile 3).

    The backend sets it when the charger first connects with one; lowering the profile is
    the operator's decision, never an OCPP message's."""
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    changed = _run_store_action(
        lambda: store.require_client_certificate(charge_point_id, required))
    state = "must present its client certificate" if required else "may use Basic auth"
    click.echo(f"{charge_point_id}: {state}{'' if changed else ' (unchanged)'}")


# --- locations --------------------------------------------------------------------------------

@csms.group()
def location() -> None:
    """What an eMSP app shows of a location (locations are created by `charger add`)."""


def _weekdays(text: str) -> list[int]:
    """"1-5", "6,7" or "3" (Monday is 1) as weekday numbers."""
    days: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"weekdays {text!r}: use 1 (Monday) to 7, e.g. 1-5 or 6,7")
        days += range(int(first), int(last or first) + 1)
    if not days or not all(1 <= d <= 7 for d in days):
        raise ValueError(f"weekdays {text!r}: use 1 (Monday) to 7, e.g. 1-5 or 6,7")
    return sorted(set(days))


def _regular_hours(spec: str) -> list[dict[str, Any]]:
    """"1-5 08:00-20:00" as OCPI RegularHours (one per weekday)."""
    days, _, times = spec.strip().partition(" ")
    begin, _, end = times.strip().partition("-")
    if not begin or not end:
        raise ValueError(f"hours {spec!r}: use WEEKDAYS HH:MM-HH:MM, e.g. '1-5 08:00-20:00'")
    return [{"weekday": day, "period_begin": begin.strip(), "period_end": end.strip()}
            for day in _weekdays(days)]


def _period(spec: str) -> dict[str, str]:
    """"2026-12-25T00:00:00Z/2026-12-26T00:00:00Z" as an OCPI ExceptionalPeriod."""
    begin, _, end = spec.partition("/")
    if not begin or not end:
        raise ValueError(f"period {spec!r}: use BEGIN/END in UTC, e.g. "
                         "2026-12-25T00:00:00Z/2026-12-26T00:00:00Z")
    return {"period_begin": begin.strip(), "period_end": end.strip()}


@location.command("set")
@click.argument("location_id")
@db_option
@country_option
@party_option
@click.option("--open-247", is_flag=True, help="open 24 hours a day, 7 days a week")
@click.option("--hours", "hours", multiple=True, metavar="'WEEKDAYS HH:MM-HH:MM'",
              help="regular opening hours in local time, e.g. '1-5 08:00-20:00' (Monday is 1)")
@click.option("--closed", multiple=True, metavar="BEGIN/END",
              help="an exceptional closing, UTC, e.g. 2026-12-25T00:00:00Z/2026-12-26T00:00:00Z")
@click.option("--extra-opening", multiple=True, metavar="BEGIN/END",
              help="an exceptional opening, UTC")
@click.option("--charging-when-closed/--no-charging-when-closed", default=None,
              help="whether charging goes on while the location is closed")
@click.option("--clear-opening-times", is_flag=True, help="say nothing of opening times")
@click.option("--operator", "operator_name", default=None, help="operator's name")
@click.option("--operator-website", default=None, help="operator's website URL")
@click.option("--clear-operator", is_flag=True)
@click.option("--facility", "facilities", multiple=True, metavar="FACILITY",
              help="OCPI Facility nearby (repeat; replaces the list), e.g. CAFE, WIFI")
@click.option("--clear-facilities", is_flag=True)
@click.option("--parking-type", default=None, metavar="PARKING_TYPE",
              help="OCPI ParkingType, e.g. ON_STREET, PARKING_GARAGE")
@click.option("--clear-parking-type", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="print the OCPI Location")
def location_set(location_id: str, db: str, country_code: str, party_id: str,
                 open_247: bool, hours: Sequence[str], closed: Sequence[str],
                 extra_opening: Sequence[str], charging_when_closed: bool | None,
                 clear_opening_times: bool, operator_name: str | None,
                 operator_website: str | None, clear_operator: bool,
                 facilities: Sequence[str], clear_facilities: bool, parking_type: str | None,
                 clear_parking_type: bool, as_json: bool) -> None:
    """Set LOCATION_ID's opening times, operator, facilities or parking type; what is not
    given stays as it is. Partners that receive locations get it again."""
    from chargerfw.csms.store import LocationDetails

    opening_times: dict[str, Any] | None = None
    try:
        if open_247 and hours:
            raise ValueError("--open-247 and --hours exclude each other")
        if clear_opening_times and (open_247 or hours or closed or extra_opening):
            raise ValueError("--clear-opening-times excludes the other opening times")
        if open_247 or hours or closed or extra_opening:
            if not open_247 and not hours:
                raise ValueError("exceptional openings and closings need --open-247 or --hours")
            opening_times = {"twentyfourseven": open_247}
            if hours:
                opening_times["regular_hours"] = [h for spec in hours
                                                  for h in _regular_hours(spec)]
            if extra_opening:
                opening_times["exceptional_openings"] = [_period(p) for p in extra_opening]
            if closed:
                opening_times["exceptional_closings"] = [_period(p) for p in closed]
        elif clear_opening_times:
            opening_times = {}
        if clear_operator and (operator_name or operator_website):
            raise ValueError("--clear-operator excludes --operator and --operator-website")
        if operator_website and not operator_name:
            raise ValueError("--operator-website needs --operator (the name is required)")
        if clear_facilities and facilities:
            raise ValueError("--clear-facilities excludes --facility")
        if clear_parking_type and parking_type:
            raise ValueError("--clear-parking-type excludes --parking-type")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    operator = None
    if operator_name:
        operator = {"name": operator_name}
        if operator_website:
            operator["website"] = operator_website
    elif clear_operator:
        operator = {}
    details = LocationDetails(
        opening_times=opening_times, charging_when_closed=charging_when_closed,
        operator=operator,
        facilities=[] if clear_facilities else ([f.upper() for f in facilities] or None),
        parking_type="" if clear_parking_type else (parking_type.upper() if parking_type
                                                    else None))
    store = _open_store(db, _cpo(country_code, party_id))
    result = _run_store_action(lambda: store.set_location_details(location_id, details))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"location {location_id} updated")


@location.command("show")
@click.argument("location_id")
@db_option
def location_show(location_id: str, db: str) -> None:
    """Print LOCATION_ID as partners see it (an OCPI Location, JSON)."""
    store = _open_store(db, _cpo("NL", "CFW"))
    result = store.get_location(location_id)
    if result is None:
        click.echo(f"error: unknown location {location_id!r}", err=True)
        raise SystemExit(2)
    click.echo(json.dumps(result, indent=2))


# --- tariffs ----------------------------------------------------------------------------------

@csms.group()
def tariff() -> None:
    """Prices."""


def _tariff_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        db_option, country_option, party_option,
        click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
                     help="the OCPI Tariff object (elements, restrictions, min/max price, ...) "
                          "as TOML or JSON"),
        click.option("--currency", default=None, help="ISO 4217 code  [default: EUR]"),
        click.option("--energy", type=click.FloatRange(0), default=None, help="price per kWh"),
        click.option("--time", "per_hour", type=click.FloatRange(0), default=None,
                     help="price per hour of charging"),
        click.option("--parking", type=click.FloatRange(0), default=None,
                     help="price per hour connected but not charging"),
        click.option("--flat", type=click.FloatRange(0), default=None,
                     help="price per session"),
        click.option("--vat", type=click.FloatRange(0, 100), default=None,
                     help="VAT percentage"),
        click.option("--apply-to", "apply_to", multiple=True, metavar="EVSE_UID",
                     help="price these EVSEs' connectors with it"),
        click.option("--apply-to-all", is_flag=True, help="price every connector with it"),
    ]):
        f = option(f)
    return f


def _plain_toml(value: Any) -> Any:
    """TOML dates and times as the strings OCPI writes them (HH:MM, YYYY-MM-DD, RFC 3339)."""
    from datetime import date, time

    if isinstance(value, dict):
        return {k: _plain_toml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_toml(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _tariff_file(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint="--file") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        elif path.suffix.lower() == ".toml":
            data = _plain_toml(tomllib.loads(raw.decode("utf-8")))
        else:
            raise click.BadParameter(f"{path}: name a .toml or .json file",
                                     param_hint="--file")
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.BadParameter(f"{path}: not valid {path.suffix[1:].upper()}: {exc}",
                                 param_hint="--file") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: a Tariff object is required", param_hint="--file")
    return data


def _tariff_model(tariff_id: str, cpo: Any, path: Path | None, currency: str | None,
                  prices: dict[str, float | None], vat: float | None) -> Any:
    """The Tariff from a file, or one element of the prices given as options."""
    from pydantic import ValidationError

    from chargerfw.csms.ocpi.models import Tariff
    from chargerfw.csms.store import utcnow

    components = [{"type": kind, "price": price, "vat": vat, "step_size": 1}
                  for kind, price in prices.items() if price is not None]
    if path is not None:
        if components or vat is not None:
            raise click.UsageError("give the prices in --file or as options, not both")
        data = _tariff_file(path)
        if data.get("id", tariff_id) != tariff_id:
            raise click.UsageError(f"{path} describes tariff {data['id']!r}, not {tariff_id!r}")
        if currency is not None:
            data["currency"] = currency
        data.setdefault("currency", "EUR")
    else:
        if not components:
            raise click.UsageError("give at least one of --energy, --time, --parking, --flat "
                                   "(or a --file)")
        data = {"currency": currency or "EUR", "elements": [{"price_components": components}]}
    data = {**data, "id": tariff_id, "last_updated": utcnow()}
    data.setdefault("country_code", cpo.country_code)
    data.setdefault("party_id", cpo.party_id)
    if isinstance(data.get("currency"), str):
        data["currency"] = data["currency"].upper()
    try:
        return Tariff.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.UsageError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _apply_tariff(store: Any, tariff_id: str, apply_to: Sequence[str],
                  apply_to_all: bool) -> int:
    applied = 0
    if apply_to_all:
        applied = _run_store_action(lambda: store.set_connector_tariff(tariff_id))
    for uid in apply_to:
        applied += _run_store_action(partial(store.set_connector_tariff, tariff_id, uid))
    return int(applied)


@tariff.command("add")
@click.argument("tariff_id")
@_tariff_options
def tariff_add(tariff_id: str, db: str, country_code: str, party_id: str, path: Path | None,
               currency: str | None, energy: float | None, per_hour: float | None,
               parking: float | None, flat: float | None, vat: float | None,
               apply_to: Sequence[str], apply_to_all: bool) -> None:
    """Add TARIFF_ID and push it to partners: one element of energy, time, parking and flat
    prices (excl. VAT) with an optional VAT rate, or any OCPI 2.2.1 tariff from --file."""
    _save_tariff(False, tariff_id, db, _cpo(country_code, party_id), path, currency, {
        "ENERGY": energy, "TIME": per_hour, "PARKING_TIME": parking, "FLAT": flat}, vat,
        apply_to, apply_to_all)


def _save_tariff(replace: bool, tariff_id: str, db: str, cpo: Any, path: Path | None,
                 currency: str | None, prices: dict[str, float | None], vat: float | None,
                 apply_to: Sequence[str], apply_to_all: bool) -> None:
    """Add (or ``replace``) a tariff, push it to partners, and price connectors by it."""
    model = _tariff_model(tariff_id, cpo, path, currency, prices, vat)
    store = _open_store(db, cpo)
    _run_store_action(lambda: (store.update_tariff if replace else store.add_tariff)(model))
    applied = _apply_tariff(store, tariff_id, apply_to, apply_to_all)
    done = "updated" if replace else "added"
    click.echo(f"{done} tariff {tariff_id} ({model.currency}); {applied} connector(s) priced")


@tariff.command("update")
@click.argument("tariff_id")
@_tariff_options
def tariff_update(tariff_id: str, db: str, country_code: str, party_id: str,
                  path: Path | None, currency: str | None, energy: float | None,
                  per_hour: float | None, parking: float | None, flat: float | None,
                  vat: float | None, apply_to: Sequence[str], apply_to_all: bool) -> None:
    """Replace TARIFF_ID (as `add` describes it) and push it to partners. Sessions already
    running keep the tariff they started under."""
    _save_tariff(True, tariff_id, db, _cpo(country_code, party_id), path, currency, {
        "ENERGY": energy, "TIME": per_hour, "PARKING_TIME": parking, "FLAT": flat}, vat,
        apply_to, apply_to_all)


@tariff.command("delete")
@click.argument("tariff_id")
@db_option
@country_option
@party_option
def tariff_delete(tariff_id: str, db: str, country_code: str, party_id: str) -> None:
    """Delete TARIFF_ID and DELETE it at partners (no connector may price with it)."""
    store = _open_store(db, _cpo(country_code, party_id))
    _run_store_action(lambda: store.delete_tariff(tariff_id))
    click.echo(f"deleted tariff {tariff_id}")


@tariff.command("list")
@db_option
@country_option
@party_option
@click.option("--json", "as_json", is_flag=True, help="OCPI Tariff objects as JSON")
def tariff_list(db: str, country_code: str, party_id: str, as_json: bool) -> None:
    """The tariffs, as partners see them."""
    from chargerfw.csms.store import PageQuery

    store = _open_store(db, _cpo(country_code, party_id))
    tariffs: list[dict[str, Any]] = []
    while True:
        page = store.list_tariffs(PageQuery(offset=len(tariffs), limit=500))
        tariffs += page.items
        if not page.items or len(tariffs) >= page.total:
            break
    if as_json:
        click.echo(json.dumps(tariffs, indent=2))
        return
    click.echo(_table(["tariff", "currency", "elements", "dimensions", "last updated"], [
        [t["id"], t["currency"], len(t["elements"]),
         " ".join(sorted({c["type"] for e in t["elements"] for c in e["price_components"]})),
         t["last_updated"]] for t in tariffs]))


# --- tokens -----------------------------------------------------------------------------------

@csms.group()
def token() -> None:
    """The site's own tokens (RFID cards handed out locally, no eMSP behind them)."""


@token.command("add")
@click.argument("uid")
@db_option
@country_option
@party_option
@click.option("--whitelist", type=click.Choice(["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]),
              default="ALWAYS", show_default=True, help="OCPI whitelist rule")
@click.option("--invalid", is_flag=True, help="store it blocked (valid = false)")
@click.option("--type", "token_type", type=click.Choice(["RFID", "AD_HOC_USER", "APP_USER", "OTHER"]),
              default="RFID", show_default=True)
@click.option("--contract-id", default=None, help="default: CC-PPP-UID")
@click.option("--parent", "parent_id_tag", default=None, metavar="ID_TAG",
              help="the card's group (OCPP parentIdTag): a card of the same group may stop "
                   "its sessions")
@click.option("--expires", "expires", default=None, metavar="TIME",
              help="when the card stops being accepted (ISO 8601 with offset, e.g. "
                   "2027-01-01T00:00:00Z); chargers are told it as the expiryDate")
def token_add(uid: str, db: str, country_code: str, party_id: str, whitelist: str,
              invalid: bool, token_type: str, contract_id: str | None,
              parent_id_tag: str | None, expires: str | None) -> None:
    """Accept card UID (as its OCPP idTag, e.g. 04A1B2C3D4E5F6) at this backend's chargers."""
    expires_at = _aware_time(expires, "--expires") if expires is not None else None
    store = _open_store(db, _cpo(country_code, party_id))
    created = _run_store_action(lambda: store.add_local_token(
        uid, whitelist=whitelist, valid=not invalid, token_type=token_type,
        contract_id=contract_id, parent_id_tag=parent_id_tag, expires_at=expires_at))
    extras = [f"parent {parent_id_tag}"] if parent_id_tag else []
    if expires_at is not None:
        extras.append(f"expires {_fmt_time(expires_at)}")
    click.echo(f"{'added' if created else 'replaced'} token {uid} ({token_type}, {whitelist}"
               f"{', blocked' if invalid else ''}{''.join(', ' + e for e in extras)})")


def _aware_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with its UTC offset (``Z`` or ``+01:00``), as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time, e.g. 2027-01-01T00:00:00Z",
                                 param_hint=option) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no UTC offset; add Z or e.g. +01:00",
                                 param_hint=option)
    return parsed.astimezone(UTC)


# --- commands sent through the running server ------------------------------------------------

wait_option = click.option(
    "--wait", "wait_s", default=120, show_default=True, type=click.IntRange(1, 3600),
    help="seconds to wait for the running backend and the charger")


def _through_server(db: str, charge_point_id: str, command: str, params: dict[str, Any],
                    wait_s: int, follow_up: str | None = None) -> dict[str, Any]:
    """Queue ``command`` for the running `chargerfw csms serve` on this database (it holds
    the charger's connection), wait for its outcome; exits 1 when none comes."""
    from chargerfw.csms.operator_commands import InvalidCommand, check_params
    from chargerfw.csms.store import CpoIdentity

    try:
        checked = check_params(command, params)
    except InvalidCommand as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    store = _open_store(db, CpoIdentity())  # only queues the request
    result, taken = _queued_outcome(store, charge_point_id, command, checked, wait_s)
    if result is not None:
        return result
    if not taken:
        click.echo(f"error: no running backend took the request within {wait_s} s; "
                   "start `chargerfw csms serve` on this database", err=True)
    else:
        later = f"; see `{follow_up}`" if follow_up else ""
        click.echo(f"error: the backend took the request but has no answer from the "
                   f"charger after {wait_s} s{later}", err=True)
    raise SystemExit(1)


def _queued_outcome(store: Any, charge_point_id: str, command: str, checked: dict[str, Any],
                    wait_s: float) -> tuple[dict[str, Any] | None, bool]:
    """Queue a checked command and wait up to ``wait_s`` for its outcome: (the outcome or
    None, whether a running backend took the request; one nobody took is withdrawn)."""
    import time

    request_id = _run_store_action(
        lambda: store.request_operator_command(charge_point_id, command, checked))
    deadline = time.monotonic() + wait_s
    while True:
        request = store.operator_command(request_id)
        if request["finished_at"] is not None:
            return dict(request["outcome"]), True
        if time.monotonic() > deadline:
            return None, not store.withdraw_operator_command(request_id)
        time.sleep(0.2)


def _report(outcome: dict[str, Any], as_json: bool) -> None:
    """Print the charger's answer; exit 1 when it did not do what was asked."""
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
    else:
        click.echo(f"{outcome['charge_point_id']}: {outcome['status']}: {outcome['detail']}")
        if outcome.get("configuration"):
            click.echo(_table(["key", "value", "access"], [
                [entry["key"], "" if entry["value"] is None else entry["value"],
                 "read-only" if entry["readonly"] else "read-write"]
                for entry in outcome["configuration"]]))
    if not outcome["ok"]:
        raise SystemExit(1)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="print the outcome as JSON")


@csms.group()
def cp() -> None:
    """The charge points: list and show them, and send an OCPP command to a connected
    charger through the running `chargerfw csms serve` on this database. A command prints
    the charger's answer and exits 1 when the charger refuses, does not answer or is not
    connected."""


@cp.command("list")
@db_option
@json_option
def cp_list(db: str, as_json: bool) -> None:
    """List registered charge points, their EVSEs, statuses, connection and firmware."""
    _print_charge_points(db, None, as_json)


@cp.command("show")
@click.argument("charge_point_id", metavar="CHARGER")
@db_option
@json_option
def cp_show(charge_point_id: str, db: str, as_json: bool) -> None:
    """CHARGER as in `cp list`, with its latest events: command outcomes and firmware,
    diagnostics and log status notifications."""
    _print_charge_points(db, charge_point_id, as_json)


@cp.command("events")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--type", "of_type", default=None,
              help="only events of this kind (command, SecurityEventNotification, "
                   "SecurityEvent, CertificateSigned, ...) or security event type "
                   "(e.g. InvalidChargePointCertificate)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@db_option
@json_option
def cp_events(charge_point_id: str, of_type: str | None, limit: int, db: str,
              as_json: bool) -> None:
    """CHARGER's events, newest first: security events it reported (SecurityEventNotification)
    and the backend saw (SecurityEvent), command outcomes, certificates signed
    (CertificateSigned), status notifications."""
    from chargerfw.csms.charge_point_view import event_json
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    if store.get_charge_point(charge_point_id) is None:
        click.echo(f"error: unknown charge point {charge_point_id!r}", err=True)
        raise SystemExit(2)
    events = [event_json(row) for row in
              store.charge_point_event_history(charge_point_id, of_type, limit)]
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    click.echo(_table(["id", "at", "kind", "type / status", "detail"], [
        [e["id"], e["at"], e["kind"],
         e["data"].get("type") or e["data"].get("status") or "",
         e["data"].get("techInfo") or e["data"].get("detail") or ""] for e in events]))


@cp.command("reset")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--hard", is_flag=True, help="a Hard reset (default: Soft)")
@db_option
@wait_option
@json_option
def cp_reset(charge_point_id: str, hard: bool, db: str, wait_s: int, as_json: bool) -> None:
    """Reset CHARGER (Reset)."""
    _report(_through_server(db, charge_point_id, "reset",
                            {"type": "Hard" if hard else "Soft"}, wait_s), as_json)


@cp.command("availability")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("availability", type=click.Choice(["operative", "inoperative"],
                                                  case_sensitive=False))
@click.option("--connector", default=0, show_default=True, type=click.IntRange(0),
              help="the connector (0: the whole charger)")
@db_option
@wait_option
@json_option
def cp_availability(charge_point_id: str, availability: str, connector: int, db: str,
                    wait_s: int, as_json: bool) -> None:
    """Make CHARGER (or one connector) operative or inoperative (ChangeAvailability)."""
    _report(_through_server(db, charge_point_id, "availability",
                            {"connector": connector, "type": availability.capitalize()},
                            wait_s), as_json)


@cp.group("config")
def cp_config() -> None:
    """A charger's configuration keys (GetConfiguration, ChangeConfiguration)."""


@cp_config.command("get")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@db_option
@wait_option
@json_option
def cp_config_get(charge_point_id: str, keys: tuple[str, ...], db: str, wait_s: int,
                  as_json: bool) -> None:
    """CHARGER's configuration: the KEYs given, or all. Exits 1 when it does not know one."""
    _report(_through_server(db, charge_point_id, "config_get", {"keys": list(keys)}, wait_s),
            as_json)


@cp_config.command("set")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("key")
@click.argument("value")
@db_option
@wait_option
@json_option
def cp_config_set(charge_point_id: str, key: str, value: str, db: str, wait_s: int,
                  as_json: bool) -> None:
    """Set CHARGER's configuration KEY to VALUE."""
    _report(_through_server(db, charge_point_id, "config_set", {"key": key, "value": value},
                            wait_s), as_json)


@cp.command("trigger")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("message", metavar="MESSAGE")
@click.option("--connector", default=None, type=click.IntRange(1),
              help="the connector the message is about")
@db_option
@wait_option
@json_option
def cp_trigger(charge_point_id: str, message: str, connector: int | None, db: str,
               wait_s: int, as_json: bool) -> None:
    """Ask CHARGER to send MESSAGE now (TriggerMessage): BootNotification,
    DiagnosticsStatusNotification, FirmwareStatusNotification, Heartbeat, MeterValues or
    StatusNotification."""
    from chargerfw.csms.operator_commands import TRIGGER_MESSAGES

    _trigger(charge_point_id, "trigger", TRIGGER_MESSAGES, message, connector, db, wait_s,
             as_json)


def _trigger(charge_point_id: str, kind: str, messages: Sequence[str], message: str,
             connector: int | None, db: str, wait_s: int, as_json: bool) -> None:
    """A TriggerMessage or ExtendedTriggerMessage of one of ``messages`` (any case)."""
    known = {name.lower(): name for name in messages}
    if message.lower() not in known:
        raise click.BadParameter(f"{message!r} is not one of {', '.join(messages)}",
                                 param_hint="MESSAGE")
    _report(_through_server(db, charge_point_id, kind,
                            {"message": known[message.lower()], "connector": connector},
                            wait_s), as_json)


@cp.command("clear-cache")
@click.argument("charge_point_id", metavar="CHARGER")
@db_option
@wait_option
@json_option
def cp_clear_cache(charge_point_id: str, db: str, wait_s: int, as_json: bool) -> None:
    """Clear CHARGER's authorization cache (ClearCache)."""
    _report(_through_server(db, charge_point_id, "clear_cache", {}, wait_s), as_json)


@cp.command("unlock")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("connector", type=click.IntRange(1))
@db_option
@wait_option
@json_option
def cp_unlock(charge_point_id: str, connector: int, db: str, wait_s: int,
              as_json: bool) -> None:
    """Unlock CHARGER's CONNECTOR (UnlockConnector)."""
    _report(_through_server(db, charge_point_id, "unlock", {"connector": connector}, wait_s),
            as_json)


@cp.command("install-certificate")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("certificate_type", metavar="TYPE", type=click.Choice(
    ["CentralSystemRootCertificate", "ManufacturerRootCertificate"]))
@click.argument("pem_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@db_option
@wait_option
@json_option
def cp_install_certificate(charge_point_id: str, certificate_type: str, pem_file: Path,
                           db: str, wait_s: int, as_json: bool) -> None:
    """Install the root certificate in PEM_FILE on CHARGER as TYPE (InstallCertificate)."""
    _report(_through_server(db, charge_point_id, "install_certificate",
                            {"certificate_type": certificate_type,
                             "certificate": pem_file.read_text(encoding="utf-8",
                                                               errors="replace")},
                            wait_s), as_json)


@cp.command("delete-certificate")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--issuer-name-hash", required=True, help="hex")
@click.option("--issuer-key-hash", required=True, help="hex")
@click.option("--serial-number", required=True, help="hex")
@click.option("--hash-algorithm", default="SHA256", show_default=True,
              type=click.Choice(["SHA256", "SHA384", "SHA512"]))
@db_option
@wait_option
@json_option
def cp_delete_certificate(charge_point_id: str, issuer_name_hash: str, issuer_key_hash: str,
                          serial_number: str, hash_algorithm: str, db: str, wait_s: int,
                          as_json: bool) -> None:
    """Delete a root certificate from CHARGER by its CertificateHashData, as
    `cp certificates` lists it (DeleteCertificate)."""
    _report(_through_server(db, charge_point_id, "delete_certificate",
                            {"hash_algorithm": hash_algorithm,
                             "issuer_name_hash": issuer_name_hash,
                             "issuer_key_hash": issuer_key_hash,
                             "serial_number": serial_number}, wait_s), as_json)


@cp.command("certificates")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("certificate_type", metavar="TYPE", type=click.Choice(
    ["CentralSystemRootCertificate", "ManufacturerRootCertificate"]))
@db_option
@wait_option
@json_option
def cp_certificates(charge_point_id: str, certificate_type: str, db: str, wait_s: int,
                    as_json: bool) -> None:
    """The root certificates of TYPE installed on CHARGER (GetInstalledCertificateIds)."""
    outcome = _through_server(db, charge_point_id, "certificate_ids",
                              {"certificate_type": certificate_type}, wait_s)
    if not as_json and outcome.get("certificate_hash_data"):
        click.echo(_table(["hash", "issuer name hash", "issuer key hash", "serial"], [
            [h.get("hash_algorithm"), h.get("issuer_name_hash"), h.get("issuer_key_hash"),
             h.get("serial_number")] for h in outcome["certificate_hash_data"]]))
    _report(outcome, as_json)


@cp.command("extended-trigger")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("message", metavar="MESSAGE")
@click.option("--connector", default=None, type=click.IntRange(1),
              help="the connector the message is about")
@db_option
@wait_option
@json_option
def cp_extended_trigger(charge_point_id: str, message: str, connector: int | None, db: str,
                        wait_s: int, as_json: bool) -> None:
    """Ask CHARGER to send MESSAGE now (ExtendedTriggerMessage): BootNotification,
    LogStatusNotification, FirmwareStatusNotification, Heartbeat, MeterValues,
    SignChargePointCertificate (a new CSR, which `serve --ca-dir` signs) or
    StatusNotification."""
    from chargerfw.csms.operator_commands import EXTENDED_TRIGGER_MESSAGES

    _trigger(charge_point_id, "extended_trigger", EXTENDED_TRIGGER_MESSAGES, message, connector,
             db, wait_s, as_json)


def _migration_sender(store: Any, charge_point_id: str, wait_s: int
                      ) -> Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """Sends a security step's operator command through the running backend: its outcome."""

    async def send(command: str, params: dict[str, Any]) -> dict[str, Any]:
        from chargerfw.csms.operator_commands import outcome

        result, taken = await asyncio.to_thread(_queued_outcome, store, charge_point_id,
                                                command, params, wait_s)
        if result is not None:
            return result
        return outcome(charge_point_id, command, "NoAnswer",
                       f"no running backend took the request within {wait_s} s" if not taken
                       else f"no answer from the charger after {wait_s} s")

    return send


@cp.command("rotate-password")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--reconnect-timeout", default=180, show_default=True,
              type=click.IntRange(5, 3600),
              help="seconds to wait for the charger to reconnect with its new key")
@db_option
@wait_option
def cp_rotate_password(charge_point_id: str, reconnect_timeout: int, db: str,
                       wait_s: int) -> None:
    """Give CHARGER (connected over TLS: security profile 2 or 3) a new Basic-auth password
    through the running `serve`: it generates a random AuthorizationKey, sends it
    (ChangeConfiguration) and keeps it as the password only when the charger takes it; then
    waits for the charger to reconnect with it (if it does not, the previous password is
    put back). The key is never shown, stored in clear nor logged. Exits 1 when the key was
    not changed."""
    from chargerfw.csms.security_migration import MigrationStopped, SecurityMigration
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    rotation = SecurityMigration(store, _migration_sender(store, charge_point_id, wait_s),
                                 charge_point_id, reconnect_timeout_s=reconnect_timeout)
    try:
        asyncio.run(rotation.rotate_authorization_key())
    except MigrationStopped as stopped:
        click.echo(f"error: {charge_point_id}: the password was not changed: "
                   f"{stopped.step.detail}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{charge_point_id}: a new AuthorizationKey is its password; it reconnected "
               "with it")


@cp.command("security-migrate")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--to-profile", "target", required=True, type=click.IntRange(2, 3),
              help="the security profile to reach (from 1 through 2 to 3)")
@click.option("--root", "root_file", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the backend's TLS root certificate (PEM), installed on the charger as "
                   "CentralSystemRootCertificate (needed to leave profile 1)")
@click.option("--cpo-name", default=None,
              help="set the charger's CpoName first (the O its CSR carries; as serve "
                   "--cpo-name)")
@click.option("--reconnect-timeout", default=180, show_default=True,
              type=click.IntRange(5, 3600),
              help="seconds to wait for the charger to reconnect after a change")
@db_option
@wait_option
def cp_security_migrate(charge_point_id: str, target: int, root_file: Path | None,
                        cpo_name: str | None, reconnect_timeout: int, db: str,
                        wait_s: int) -> None:
    """Raise CHARGER's security profile step by step, each verified before the next,
    through the running `serve` (with TLS, and --ca-dir for profile 3): install the root
    and check it, SecurityProfile 2 and its reconnect over TLS, a fresh AuthorizationKey;
    then a certificate from the fleet CA (ExtendedTriggerMessage SignChargePointCertificate)
    and SecurityProfile 3 with its reconnect. Exits 1 at the first step that fails (the
    charger stays on the profile it works on)."""
    from chargerfw.csms.security_migration import MigrationStopped, SecurityMigration, Step
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    send = _migration_sender(store, charge_point_id, wait_s)

    def report(step: Step) -> None:
        click.echo(f"{charge_point_id}: profile {step.profile}: {step.name}: "
                   f"{'ok' if step.ok else 'FAILED'}: {step.detail}")

    migration = SecurityMigration(
        store, send, charge_point_id,
        central_system_root=root_file.read_text(encoding="utf-8", errors="replace")
        if root_file is not None else None, cpo_name=cpo_name,
        reconnect_timeout_s=reconnect_timeout, certificate_timeout_s=reconnect_timeout,
        report=report)
    try:
        reached = asyncio.run(migration.run(target))
    except MigrationStopped as stopped:
        click.echo(f"error: {charge_point_id} stopped before security profile "
                   f"{stopped.step.profile}: {stopped.step.detail}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{charge_point_id}: on security profile {reached}")


# --- files: firmware updates, diagnostics, logs -----------------------------------------------

data_dir_option = click.option(
    "--data-dir", default=None, envvar="CHARGERFW_CSMS_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the backend keeps published firmware and uploaded files (default: beside a "
         "SQLite database, DB.files; csms-files in the default database's directory "
         "with PostgreSQL)")


def _data_dir(db: str, data_dir: Path | None) -> Path:
    from chargerfw.csms.paths import default_data_dir

    return data_dir.resolve() if data_dir is not None else default_data_dir(db)


follow_options = [
    click.option("--follow", is_flag=True,
                 help="then print the charger's status notifications as they arrive, until "
                      "a final one; exit 1 unless it reports success"),
    click.option("--follow-timeout", default=1800, show_default=True,
                 type=click.IntRange(1, 7 * 86400), help="seconds to follow at most"),
]


def _follow_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(follow_options):
        f = option(f)
    return f


def _follow(db: str, charge_point_id: str, kind: str, after_id: int, timeout_s: int,
            request_id: int | None = None) -> None:
    """Print ``kind`` statuses newer than ``after_id`` until a final one; exit 1 unless it
    is a success or when none comes in time."""
    import time

    from chargerfw.csms.operator_commands import FINAL_STATUSES, SUCCEEDED
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for row in store.file_statuses(charge_point_id, kind, after_id):
            after_id = row["id"]
            if request_id is not None and row["request_id"] not in (None, request_id):
                continue
            click.echo(f"{charge_point_id}: {row['status']} ({_fmt_time(row['reported_at'])} "
                       f"UTC)")
            if row["status"] in FINAL_STATUSES[kind]:
                if row["status"] not in SUCCEEDED:
                    raise SystemExit(1)
                return
        time.sleep(0.2)
    click.echo(f"error: no final status from {charge_point_id} within {timeout_s} s",
               err=True)
    raise SystemExit(1)


def _send_and_follow(db: str, charge_point_id: str, command: str, params: dict[str, Any],
                     wait_s: int, as_json: bool, follow: bool, follow_timeout: int,
                     kind: str) -> None:
    from chargerfw.csms.store import CpoIdentity

    before = _open_store(db, CpoIdentity()).last_file_status_id()
    outcome = _through_server(db, charge_point_id, command, params, wait_s)
    _report(outcome, as_json)
    if follow:
        _follow(db, charge_point_id, kind, before, follow_timeout,
                outcome.get("request_id") if command == "get_log" or outcome.get("signed")
                else None)


@csms.group()
def firmware() -> None:
    """Firmware releases the backend serves to its chargers."""


@firmware.command("publish")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--signing-certificate", "certificate", metavar="CERT.pem", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="publish it signed (for `cp firmware update --signed`): the "
                   "manufacturer's firmware signing certificate, PEM")
@click.option("--signature", metavar="SIG.b64", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the base64 signature over FILE made with that certificate's key")
@click.option("--sign-with", "sign_with", metavar="KEY.pem", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="or sign FILE here with that certificate's private key (PEM, EC or RSA)")
@db_option
@data_dir_option
def firmware_publish(path: Path, certificate: Path | None, signature: Path | None,
                     sign_with: Path | None, db: str, data_dir: Path | None) -> None:
    """Publish the release archive FILE (`make release`) for chargers to download: it must
    be a tar holding manifest.json with the release's version. With --signing-certificate
    and --signature or --sign-with it is published signed; the signature must be valid over
    FILE with the certificate's key (the chargers check the certificate's chain)."""
    from chargerfw.csms.file_server import ReleaseRefused, publish_release
    from chargerfw.csms.store import CpoIdentity

    if (signature is not None or sign_with is not None) and certificate is None:
        raise click.UsageError("--signature and --sign-with need --signing-certificate")
    if certificate is not None and (signature is None) == (sign_with is None):
        raise click.UsageError("--signing-certificate needs one of --signature or --sign-with")
    store = _open_store(db, CpoIdentity())
    try:
        release = _run_store_action(lambda: publish_release(
            store, _data_dir(db, data_dir), path,
            signing_certificate=None if certificate is None else certificate.read_text(),
            signature=None if signature is None else signature.read_text(),
            sign_with=None if sign_with is None else sign_with.read_bytes()))
    except (ReleaseRefused, UnicodeDecodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"published {release['version']}{' signed' if release['signed'] else ''} as "
               f"{release['file_name']} ({release['size']} bytes, sha256 {release['sha256']})")


@firmware.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def firmware_list(db: str, as_json: bool) -> None:
    """The published releases."""
    from chargerfw.csms.store import CpoIdentity

    releases = [dict(r) for r in _open_store(db, CpoIdentity()).list_releases()]
    if as_json:
        click.echo(json.dumps(releases, indent=2, default=_fmt_time))
        return
    click.echo(_table(["version", "file", "size", "sha256", "signed", "published (UTC)"], [
        [r["version"], r["file_name"], r["size"], r["sha256"],
         "no" if r["signature"] is None else "yes", r["published_at"]]
        for r in releases]))


@cp.group("firmware")
def cp_firmware() -> None:
    """A charger's firmware (UpdateFirmware, SignedUpdateFirmware)."""


@cp_firmware.command("update")
@click.argument("charge_point_id", metavar="CHARGER")
@click.argument("version", required=False)
@click.option("--url", default=None, help="a firmware URL of your own instead of a release "
                                          "the backend publishes")
@click.option("--retrieve-date", default=None, metavar="TIME",
              help="when the charger should fetch it, ISO 8601 with offset (default: now)")
@click.option("--retries", default=None, type=click.IntRange(0, 100),
              help="how often the charger retries the download")
@click.option("--retry-interval", default=None, type=click.IntRange(0, 86400),
              help="seconds between its retries")
@click.option("--signed", is_flag=True,
              help="SignedUpdateFirmware with the signature VERSION was published with (the "
                   "charger checks it against its manufacturer roots)")
@_follow_options
@db_option
@wait_option
@json_option
def cp_firmware_update(charge_point_id: str, version: str | None, url: str | None,
                       retrieve_date: str | None, retries: int | None,
                       retry_interval: int | None, signed: bool, follow: bool,
                       follow_timeout: int, db: str, wait_s: int, as_json: bool) -> None:
    """Have CHARGER install the published release VERSION (through a one-time URL of the
    file server only it may use), or the firmware at --url."""
    from chargerfw.csms.store import CpoIdentity
    from chargerfw.csms.store.charger_files import FIRMWARE, SIGNED_FIRMWARE

    if (version is None) == (url is None):
        raise click.UsageError("give a published release's VERSION or --url")
    if signed and version is None:
        raise click.UsageError("--signed needs a published release's VERSION")
    release = None if version is None else _open_store(db, CpoIdentity()).get_release(version)
    if version is not None and release is None:
        click.echo(f"error: no published release {version!r}; see `chargerfw csms firmware "
                   "list`", err=True)
        raise SystemExit(2)
    if signed and release is not None and release["signature"] is None:
        click.echo(f"error: release {version} was published without a signature; publish it "
                   "with --signing-certificate", err=True)
        raise SystemExit(2)
    params = {"version": version, "url": url, "retries": retries,
              "retry_interval": retry_interval, "signed": signed,
              "retrieve_date": retrieve_date and _aware_time(retrieve_date,
                                                             "--retrieve-date").isoformat()}
    _send_and_follow(db, charge_point_id, "firmware_update", params, wait_s, as_json, follow,
                     follow_timeout, SIGNED_FIRMWARE if signed else FIRMWARE)


period_options = [
    click.option("--start", default=None, metavar="TIME",
                 help="the oldest entries wanted, ISO 8601 with offset"),
    click.option("--stop", default=None, metavar="TIME",
                 help="the newest entries wanted, ISO 8601 with offset"),
    click.option("--retries", default=None, type=click.IntRange(0, 100),
                 help="how often the charger retries the upload"),
    click.option("--retry-interval", default=None, type=click.IntRange(0, 86400),
                 help="seconds between its retries"),
]


def _period_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(period_options):
        f = option(f)
    return f


def _period_params(start: str | None, stop: str | None, retries: int | None,
                   retry_interval: int | None) -> dict[str, Any]:
    return {"start": start and _aware_time(start, "--start").isoformat(),
            "stop": stop and _aware_time(stop, "--stop").isoformat(),
            "retries": retries, "retry_interval": retry_interval}


@cp.command("diagnostics")
@click.argument("charge_point_id", metavar="CHARGER")
@_period_options
@_follow_options
@db_option
@wait_option
@json_option
def cp_diagnostics(charge_point_id: str, start: str | None, stop: str | None,
                   retries: int | None, retry_interval: int | None, follow: bool,
                   follow_timeout: int, db: str, wait_s: int, as_json: bool) -> None:
    """Have CHARGER upload its diagnostics to a one-time URL of the file server
    (GetDiagnostics); `cp diagnostics-files` lists what arrived."""
    from chargerfw.csms.store.charger_files import DIAGNOSTICS

    _send_and_follow(db, charge_point_id, "diagnostics",
                     _period_params(start, stop, retries, retry_interval), wait_s, as_json,
                     follow, follow_timeout, DIAGNOSTICS)


@cp.command("log")
@click.argument("charge_point_id", metavar="CHARGER")
@click.option("--type", "log_type", required=True,
              type=click.Choice(["DiagnosticsLog", "SecurityLog"]), help="which log")
@_period_options
@_follow_options
@db_option
@wait_option
@json_option
def cp_log(charge_point_id: str, log_type: str, start: str | None, stop: str | None,
           retries: int | None, retry_interval: int | None, follow: bool,
           follow_timeout: int, db: str, wait_s: int, as_json: bool) -> None:
    """Have CHARGER upload a log to a one-time URL of the file server (GetLog, OCPP 1.6
    Security Whitepaper)."""
    from chargerfw.csms.store.charger_files import LOG

    _send_and_follow(db, charge_point_id, "get_log",
                     {"log_type": log_type, **_period_params(start, stop, retries,
                                                             retry_interval)},
                     wait_s, as_json, follow, follow_timeout, LOG)


@cp.command("diagnostics-files")
@click.argument("charge_point_id", metavar="CHARGER")
@db_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def cp_diagnostics_files(charge_point_id: str, db: str, data_dir: Path | None,
                         as_json: bool) -> None:
    """The diagnostics and logs CHARGER uploaded (paths under the data directory)."""
    from chargerfw.csms.store import CpoIdentity

    store = _open_store(db, CpoIdentity())
    if store.get_charge_point(charge_point_id) is None:
        click.echo(f"error: unknown charge point {charge_point_id!r}", err=True)
        raise SystemExit(2)
    base = _data_dir(db, data_dir)
    files = [{**row, "full_path": str(base / row["path"])}
             for row in store.received_files(charge_point_id)]
    if as_json:
        click.echo(json.dumps(files, indent=2, default=_fmt_time))
        return
    click.echo(_table(["received (UTC)", "kind", "size", "charger's name", "file"], [
        [f["received_at"], f["kind"], f["size"], f["file_name"] or "", f["full_path"]]
        for f in files]))


# --- local authorization lists ----------------------------------------------------------------

@csms.group("local-list")
def local_list() -> None:
    """The OCPP local authorization list each charger gets from the token database."""


@local_list.command("push")
@click.argument("charge_point_id", metavar="CHARGER")
@db_option
@click.option("--full", is_flag=True,
              help="send the whole list (default: only what changed since the charger's "
                   "version, or the whole list when it holds another)")
@click.option("--wait", "wait_s", default=120, show_default=True, type=click.IntRange(1, 3600),
              help="seconds to wait for the running backend to push")
def local_list_push(charge_point_id: str, db: str, full: bool, wait_s: int) -> None:
    """Push the list to CHARGER through the running `chargerfw csms serve` on this database
    (it holds the charger's connection). Exits 1 when the charger did not take the list."""
    from chargerfw.csms.operator_commands import LOCAL_LIST_PUSH

    outcome = _through_server(db, charge_point_id, LOCAL_LIST_PUSH, {"full": full}, wait_s,
                              f"chargerfw csms local-list show {charge_point_id}")
    click.echo(_push_summary(outcome))
    if not outcome["ok"]:
        raise SystemExit(1)


def _push_summary(outcome: dict[str, Any]) -> str:
    sent = ""
    if outcome["update_type"] is not None:
        sent = (f" [{outcome['update_type']}, {outcome['messages']} message(s) accepted, "
                f"{outcome['entries_sent']} entries]")
    return f"{outcome['charge_point_id']}: {outcome['status']}: {outcome['detail']}{sent}"


@local_list.command("show")
@click.argument("charge_point_id", metavar="CHARGER")
@db_option
@country_option
@party_option
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def local_list_show(charge_point_id: str, db: str, country_code: str, party_id: str,
                    as_json: bool) -> None:
    """The list CHARGER holds as far as the backend knows, and what a push would change."""
    from chargerfw.csms.local_list import differential_update, wanted_list

    store = _open_store(db, _cpo(country_code, party_id))
    if store.get_charge_point(charge_point_id) is None:
        click.echo(f"error: unknown charge point {charge_point_id!r}", err=True)
        raise SystemExit(2)
    held = store.held_local_list(charge_point_id)
    held_entries = held.entries if held else {}
    wanted = wanted_list(store)
    changes = differential_update(held_entries, wanted)
    last = store.last_operator_command(charge_point_id, "local_list_push")
    if as_json:
        click.echo(json.dumps({
            "charge_point_id": charge_point_id,
            "version": held.version if held else None,
            "updated_at": _fmt_time(held.updated_at) if held else None,
            "held": held_entries, "wanted": wanted, "changes": changes,
            "last_push": last["outcome"] if last else None}, indent=2))
        return
    if held is None:
        click.echo(f"{charge_point_id} holds no list from this backend; a push sends "
                   f"{len(wanted)} entries (Full)")
    else:
        click.echo(f"{charge_point_id} holds version {held.version} ({len(held_entries)} "
                   f"entries, {_fmt_time(held.updated_at)} UTC); a push changes "
                   f"{len(changes)}")
    pending = {c["id_tag"]: "remove" if "id_tag_info" not in c
               else "change" if c["id_tag"] in held_entries else "add" for c in changes}
    rows = []
    for tag in sorted(held_entries.keys() | wanted.keys()):
        info = wanted.get(tag) or held_entries[tag]
        rows.append([tag, info["status"], info.get("expiry_date", ""),
                     info.get("parent_id_tag", ""), pending.get(tag, "")])
    if rows:
        click.echo(_table(["id tag", "status", "expiry", "parent", "push"], rows))
    if last is not None:
        click.echo(f"last push ({_fmt_time(last['finished_at'])} UTC): "
                   f"{_push_summary(last['outcome'])}")


# --- sites ------------------------------------------------------------------------------------

@csms.group()
def site() -> None:
    """Sites for load management: chargers sharing a grid connection's current."""


@site.command("add")
@click.argument("site_id")
@click.option("--name", default=None, help="default: the site id")
@click.option("--max-current", "max_current", type=float, required=True,
              help="the most its chargers may draw together, in A per phase")
@click.option("--parent", default=None,
              help="the site this one is a sub-feeder of (its current counts there too)")
@click.option("--fallback", "fallback", type=float, default=6.0, show_default=True,
              help="the limit (A per phase) each connector of its chargers applies when it "
                   "loses the backend, as configured on the chargers")
@click.option("--stack-level", type=click.IntRange(0, 100), default=1, show_default=True,
              help="stack level of the charging profiles the backend sends")
@db_option
def site_add(site_id: str, name: str | None, max_current: float, parent: str | None,
             fallback: float, stack_level: int, db: str) -> None:
    """Add a site (or a sub-feeder of one) of MAX-CURRENT A per phase."""
    store = _open_store(db, _cpo("NL", "CFW"))
    _run_store_action(lambda: store.add_site(site_id, name or site_id, max_current, parent,
                                             fallback, stack_level))
    click.echo(f"added site {site_id} ({max_current:g} A per phase"
               f"{f', under {parent}' if parent else ''})")


@site.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True)
def site_list(db: str, as_json: bool) -> None:
    """List the sites."""
    store = _open_store(db, _cpo("NL", "CFW"))
    rows = store.list_sites()
    if as_json:
        click.echo(json.dumps([{k: _fmt_time(v) if isinstance(v, datetime) else v
                                for k, v in row.items()} for row in rows], indent=2))
        return
    click.echo(_table(["site", "name", "max A", "parent", "fallback A", "chargers"], [
        [r["id"], r["name"], f"{r['max_current_a']:g}", r["parent_id"] or "",
         f"{r['fallback_a']:g}", r["members"]] for r in rows]))


@site.command("assign")
@click.argument("charge_point_id")
@click.argument("site_id", required=False)
@click.option("--remove", is_flag=True, help="take the charger off its site")
@db_option
def site_assign(charge_point_id: str, site_id: str | None, remove: bool, db: str) -> None:
    """Put charger CHARGE_POINT_ID on site SITE_ID (or --remove it from its site)."""
    if remove == (site_id is not None):
        raise click.UsageError("give a SITE_ID or --remove")
    store = _open_store(db, _cpo("NL", "CFW"))
    _run_store_action(lambda: store.assign_site(charge_point_id, site_id))
    click.echo(f"{charge_point_id}: {f'on site {site_id}' if site_id else 'on no site'} "
               "(the running backend re-allocates at the charger's next message)")


@site.command("show")
@click.argument("site_id")
@db_option
@click.option("--json", "as_json", is_flag=True)
def site_show(site_id: str, db: str, as_json: bool) -> None:
    """The current allocation of a site: per connector its limit, drawn current and
    whether it waits in the queue."""
    from chargerfw.csms.store import NotFound

    store = _open_store(db, _cpo("NL", "CFW"))
    try:
        snapshot = store.site_snapshot(site_id)
    except NotFound as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    rows = []
    for conn in snapshot.connectors:
        given = conn.allocation
        rows.append({
            "charge_point": conn.charge_point_id, "connector": conn.connector_id,
            "site": conn.site_id, "status": conn.status, "transaction": conn.transaction_id,
            "limit_a": given["limit_a"] if given else None,
            "role": given["role"] if given else None, "drawn_a": conn.drawn_a,
            "queued": bool(given and given["role"] == "queued")})
    top = snapshot.site
    total = sum(r["limit_a"] or 0.0 for r in rows)
    if as_json:
        click.echo(json.dumps({"site": top["id"], "max_current_a": top["max_current_a"],
                               "feeders": snapshot.feeder_limits, "allocated_a": total,
                               "connectors": rows}, indent=2))
        return
    click.echo(f"site {top['id']} ({top['name']}): {top['max_current_a']:g} A per phase, "
               f"{total:g} A given out")
    for feeder, limit in sorted(snapshot.feeder_limits.items()):
        click.echo(f"  sub-feeder {feeder}: {limit:g} A per phase")
    click.echo(_table(["charger", "conn", "site", "status", "tx", "limit A", "drawn A", "role"], [
        [r["charge_point"], r["connector"], r["site"], r["status"] or "",
         r["transaction"] or "", "" if r["limit_a"] is None else f"{r['limit_a']:g}",
         "" if r["drawn_a"] is None else f"{r['drawn_a']:g}",
         "QUEUED" if r["queued"] else r["role"] or "not sent"] for r in rows]))


# --- partners ---------------------------------------------------------------------------------

@csms.group()
def partner() -> None:
    """OCPI roaming partners."""


def _parties(values: Sequence[str]) -> list[Any]:
    from chargerfw.csms.store import Party, StoreError

    try:
        return [Party.parse(v) for v in values]
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--party") from None


partner_parties_option = click.option(
    "--party", "parties", multiple=True, required=True, metavar="CC/PID[/ROLE]",
    help="a party the partner acts for, e.g. DE/EMS (role EMSP) or DE/HUB/HUB; repeat for "
         "several. It may register as, hold tokens of and see sessions of these only")


@partner.command("add")
@click.argument("name")
@partner_parties_option
@db_option
@country_option
@party_option
@click.option("--api-url", default="http://127.0.0.1:9001", show_default=True,
              help="our public API base URL, printed for the partner")
def partner_add(name: str, parties: Sequence[str], db: str, country_code: str, party_id: str,
                api_url: str) -> None:
    """Add a partner fixed to its parties and print its CREDENTIALS_TOKEN_A (shown once;
    give it to the eMSP)."""
    given = _parties(parties)
    store = _open_store(db, _cpo(country_code, party_id))
    partner_id, token_a = _run_store_action(lambda: store.add_partner(name, given))
    click.echo(f"partner {partner_id}: {name} ({', '.join(map(str, given))})")
    click.echo(f"versions URL: {api_url.rstrip('/')}/ocpi/versions")
    click.echo(f"TOKEN_A: {token_a}")


@partner.command("list")
@db_option
def partner_list(db: str) -> None:
    """List partners, their parties and whether they are registered."""
    store = _open_store(db, _cpo("NL", "CFW"))
    click.echo(_table(["id", "name", "parties", "registered", "last updated"], [
        [p["id"], p["name"], " ".join(map(str, store.partner_parties(p["id"]))) or "-",
         "yes" if p["registered"] else "no", p["last_updated"]]
        for p in store.list_partners()]))


@partner.command("party")
@click.argument("partner_id", type=int)
@click.option("--give", multiple=True, metavar="CC/PID[/ROLE]", help="give it this party")
@click.option("--take", multiple=True, metavar="CC/PID[/ROLE]", help="take this party from it")
@db_option
@country_option
@party_option
def partner_party(partner_id: int, give: Sequence[str], take: Sequence[str], db: str,
                  country_code: str, party_id: str) -> None:
    """Give a partner parties, or take them from it (what it sees and acts for changes at
    once; a registered partner declaring a party it lost is refused at its next update)."""
    if not give and not take:
        raise click.UsageError("give --give or --take")
    store = _open_store(db, _cpo(country_code, party_id))
    for party in _parties(take):
        _run_store_action(partial(store.take_party, partner_id, party))
    for party in _parties(give):
        _run_store_action(partial(store.give_party, partner_id, party))
    held = store.partner_parties(partner_id)
    click.echo(f"partner {partner_id}: {', '.join(map(str, held)) or 'no parties'}")


@partner.command("route")
@click.argument("uid_prefix", required=False)
@click.option("--party", "party", default=None, metavar="CC/PID",
              help="the party that issued tokens whose uid starts with UID_PREFIX")
@click.option("--remove", is_flag=True, help="remove the rule for UID_PREFIX")
@db_option
def partner_route(uid_prefix: str | None, party: str | None, remove: bool, db: str) -> None:
    """Route real-time authorization of cards we hold no token for: a card whose uid starts
    with UID_PREFIX is asked of the partner holding --party (the longest prefix wins). Cards
    no rule matches are asked of nobody. Without arguments: list the rules."""
    store = _open_store(db, _cpo("NL", "CFW"))
    if uid_prefix is None:
        click.echo(_table(["uid prefix", "party"], [
            [prefix, f"{cc}/{pid}"] for prefix, cc, pid in store.token_routes()]))
        return
    if remove == (party is not None):
        raise click.UsageError("give either --party or --remove")
    if remove:
        _run_store_action(partial(store.remove_token_route, uid_prefix))
        click.echo(f"removed the route for {uid_prefix}")
        return
    target = _parties([party or ""])[0]
    _run_store_action(partial(store.set_token_route, uid_prefix, *target.code))
    click.echo(f"cards {uid_prefix}* are authorized by {target.country_code}/{target.party_id}")


@partner.command("register")
@click.argument("name")
@partner_parties_option
@click.option("--versions-url", required=True, help="the eMSP's OCPI versions URL")
@click.option("--token-a", required=True, envvar="CHARGERFW_CSMS_TOKEN_A",
              help="CREDENTIALS_TOKEN_A the eMSP gave us")
@click.option("--public-url", required=True,
              help="our running API's base URL as the eMSP reaches it (serve must be up)")
@db_option
@country_option
@party_option
@click.option("--business-name", default="chargerfw CSMS", show_default=True)
@allow_network_option
def partner_register(name: str, parties: Sequence[str], versions_url: str, token_a: str,
                     public_url: str, db: str, country_code: str, party_id: str,
                     business_name: str, allowed_networks: Sequence[str]) -> None:
    """Register with an eMSP or a hub that gave us its TOKEN_A (we start the handshake); it
    must declare exactly the parties given with --party (a hub: CC/PID/HUB; its party list
    is pulled once registered)."""
    from chargerfw.csms.ocpi.hubs import pull_hub_parties
    from chargerfw.csms.ocpi.pull import PullError
    from chargerfw.csms.ocpi.registration import HandshakeError, register_with_peer
    from chargerfw.csms.store import AsyncStore
    from chargerfw.csms.store.partners import partner_role
    from chargerfw.csms.urlpolicy import guarded_client

    given = _parties(parties)
    policy = _url_policy(allowed_networks)
    store = _open_store(db, _cpo(country_code, party_id, business_name))
    db_runner = AsyncStore(store)

    async def register() -> int:
        async with guarded_client(policy, 30) as http:
            partner_id = await register_with_peer(
                db_runner, http, versions_url, token_a,
                f"{public_url.rstrip('/')}/ocpi/versions", name, given, policy=policy)
            if partner_role(given) == "HUB":
                try:
                    await pull_hub_parties(db_runner, http, partner_id)
                except PullError as exc:  # the hub pushes its list, and serve pulls it
                    click.echo(f"warning: could not pull the hub's parties: {exc}", err=True)
            return partner_id

    try:
        partner_id = asyncio.run(register())
    except HandshakeError as exc:
        click.echo(f"error: registration failed (OCPI {exc.status_code}): {exc}", err=True)
        raise SystemExit(2) from None
    finally:
        db_runner.close()
    click.echo(f"registered with {name} as partner {partner_id}")


def _run_pull(db: str, allowed_networks: Sequence[str],
              pull: Callable[[Any, Any], Any]) -> Any:
    """Run ``pull(async_store, http)`` against the database; exits 2 with the reason when the
    partner cannot be read."""
    from chargerfw.csms.ocpi.pull import PullError
    from chargerfw.csms.store import AsyncStore, StoreError
    from chargerfw.csms.urlpolicy import guarded_client

    policy = _url_policy(allowed_networks)
    db_runner = AsyncStore(_open_store(db, _cpo("NL", "CFW")))

    async def run() -> Any:
        async with guarded_client(policy, 30) as http:
            return await pull(db_runner, http)

    try:
        return asyncio.run(run())
    except (PullError, StoreError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    finally:
        db_runner.close()


@partner.command("pull-tokens")
@click.argument("partner_id", type=int)
@db_option
@allow_network_option
@click.option("--full", is_flag=True, help="the whole list, not only changes since the last pull")
def partner_pull_tokens(partner_id: int, db: str, allowed_networks: Sequence[str],
                        full: bool) -> None:
    """Pull PARTNER_ID's token list (its tokens Sender endpoint) into the database."""
    from chargerfw.csms.ocpi.token_pull import pull_tokens

    result = _run_pull(db, allowed_networks,
                       lambda store, http: pull_tokens(store, http, partner_id, full=full))
    click.echo(f"pulled tokens of partner {partner_id}: {result.stored} stored, "
               f"{result.unchanged} unchanged, {result.refused} of other parties refused, "
               f"{result.invalid} invalid")


@partner.command("hub-parties")
@click.argument("hub_id", type=int)
@db_option
@allow_network_option
@click.option("--pull", is_flag=True, help="pull the hub's list first")
@click.option("--json", "as_json", is_flag=True, help="OCPI ClientInfo objects as JSON")
def partner_hub_parties(hub_id: int, db: str, allowed_networks: Sequence[str], pull: bool,
                        as_json: bool) -> None:
    """The parties reachable through hub HUB_ID and their connection status."""
    from chargerfw.csms.ocpi.hubs import pull_hub_parties

    if pull:
        _run_pull(db, allowed_networks,
                  lambda store, http: pull_hub_parties(store, http, hub_id))
    parties = _open_store(db, _cpo("NL", "CFW")).list_hub_parties(hub_id)
    if as_json:
        click.echo(json.dumps(parties, indent=2))
        return
    click.echo(_table(["country", "party", "role", "status", "last updated"], [
        [p["country_code"], p["party_id"], p["role"], p["status"], p["last_updated"]]
        for p in parties]))


# --- listings ---------------------------------------------------------------------------------

def _fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _newest(list_page: Callable[[Any], Any], limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` items of a paginated store listing (oldest first, newest last)."""
    from chargerfw.csms.store import PageQuery

    total = list_page(PageQuery(limit=1)).total
    return list(list_page(PageQuery(offset=max(total - limit, 0), limit=limit)).items)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[_fmt_time(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


@csms.command()
@db_option
@country_option
@party_option
@click.option("--json", "as_json", is_flag=True, help="OCPI Session objects as JSON")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def sessions(db: str, country_code: str, party_id: str, as_json: bool, limit: int) -> None:
    """List charging sessions (newest last)."""
    store = _open_store(db, _cpo(country_code, party_id))
    items = _newest(store.list_sessions, limit)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(_table(["session", "status", "evse", "token", "start", "end", "kWh", "cost"], [
        [s["id"], s["status"], s["evse_uid"], s["cdr_token"]["uid"], s["start_date_time"],
         s.get("end_date_time", ""), f"{s['kwh']:.3f}",
         f"{s['total_cost']['incl_vat']:.2f} {s['currency']}" if "total_cost" in s else ""]
        for s in items]))


@csms.command()
@db_option
@country_option
@party_option
@click.option("--json", "as_json", is_flag=True, help="OCPI CDR objects as JSON")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def cdrs(db: str, country_code: str, party_id: str, as_json: bool, limit: int) -> None:
    """List charge detail records (newest last)."""
    store = _open_store(db, _cpo(country_code, party_id))
    items = _newest(store.list_cdrs, limit)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(_table(["cdr", "evse", "token", "start", "end", "kWh", "hours", "excl. VAT",
                       "incl. VAT"], [
        [c["id"], c["cdr_location"]["evse_uid"], c["cdr_token"]["uid"], c["start_date_time"],
         c["end_date_time"], f"{c['total_energy']:.3f}", f"{c['total_time']:.3f}",
         f"{c['total_cost']['excl_vat']:.2f} {c['currency']}",
         f"{c['total_cost'].get('incl_vat', c['total_cost']['excl_vat']):.2f} {c['currency']}"]
        for c in items]))
