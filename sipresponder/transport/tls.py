"""Server certificates for the tls: and wss: listeners.

Either the operator's own certificate and key (``--tls-cert``/``--tls-key``), loaded
with the stdlib ``ssl`` module alone, or, for labs, a self-signed certificate made
on first use, kept in a cache folder and reused afterwards, so that a client told
to trust it once keeps working across restarts. Making one needs the
``cryptography`` package (the ``tls`` extra); reusing one does not.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sipresponder")

CERT_NAME = "selfsigned-cert.pem"
KEY_NAME = "selfsigned-key.pem"
VALID_DAYS = 365
# Made again when fewer days than this are left: a lab must not stop on a Monday.
RENEW_DAYS = 7


class TLSSetupError(OSError):
    """No usable certificate: the listener cannot start (the CLI prints it, exit 2)."""


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """Where the server's certificate comes from: both files, or neither (self-signed)."""

    cert: Path | None = None
    key: Path | None = None
    directory: Path | None = None  # for the self-signed pair; default: default_directory()

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("--tls-cert and --tls-key go together")


def default_directory() -> Path:
    """$XDG_CACHE_HOME/sipresponder, or ~/.cache/sipresponder (XDG base directories)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sipresponder"


def server_context(options: TLSOptions) -> tuple[ssl.SSLContext, Path]:
    """The SSL context of every tls: and wss: listener of one server, and the
    certificate file it serves."""
    if options.cert is not None and options.key is not None:
        cert, key = options.cert, options.key
    else:
        cert, key = self_signed(options.directory or default_directory())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # SIP clients do not present certificates by default (RFC 5630 leaves mutual TLS
    # to deployments); a test double should take any client that can do TLS 1.2.
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSSetupError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context, cert


def self_signed(directory: Path) -> tuple[Path, Path]:
    """The lab certificate and key in ``directory``: reused while valid, else made."""
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise TLSSetupError(f"cannot create {directory} for the self-signed certificate: "
                            f"{exc.strerror}") from None
    # Several responders (or --workers) starting at once must not each write half a pair.
    with _locked(directory / ".lock"):
        made = not _usable(cert, key)
        if made:
            _generate(cert, key)
    log.warning(
        "TLS: %s self-signed certificate %s (key %s); for labs only: clients must trust "
        "this file or skip verification; pass --tls-cert/--tls-key for your own",
        "made a" if made else "using the", cert, key,
        extra={"event": "tls_certificate", "path": str(cert), "generated": made},
    )
    return cert, key


def _usable(cert: Path, key: Path) -> bool:
    if not (cert.is_file() and key.is_file()):
        return False
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError):
        return False  # half-written or mismatched: make a new pair
    try:
        from cryptography import x509
    except ImportError:
        return True  # cannot read the dates without it; the pair loads, so use it
    try:
        not_after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    except (ValueError, OSError):
        return False
    left = not_after - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(days=RENEW_DAYS)


def _generate(cert: Path, key: Path) -> None:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise TLSSetupError(
            "a self-signed certificate for tls:/wss: needs the 'cryptography' package: "
            "pip install 'sipresponder[tls]', or pass --tls-cert FILE --tls-key FILE"
        ) from None
    import ipaddress

    # RSA rather than ECDSA: older SIP phones and SBCs only do RSA key exchange.
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hostname = socket.gethostname() or "localhost"
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "sipresponder lab certificate"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sipresponder"),
    ])
    # Clients that verify check the name they dialled against these.
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname != "localhost":
        alt_names.append(x509.DNSName(hostname))
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clock skew
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # A CA-flagged self-signed certificate can be given to clients as their trust
        # anchor (openssl -CAfile, sipsak --tls-ca-cert, Python's cafile).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                          content_commitment=False, data_encipherment=False,
                          key_agreement=False, crl_sign=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key, key_pem, 0o600)
    _write(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TLSSetupError(f"cannot write {path}: {exc.strerror}") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the write-then-rename still holds
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
