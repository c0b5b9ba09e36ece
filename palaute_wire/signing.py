"""Release manifests signed with ed25519: the fleet server cannot push code.

The operator keeps the private key off the fleet server (``palaute-server release
keygen`` / ``release sign`` on their own machine); the server stores only signed
manifests, and each kiosk has the public key in its kiosk.toml (``[updates]
release_public_key``). A kiosk installs a release only when the manifest's
signature verifies with that key, so a compromised web server or broker can at
most withhold or replay releases the operator signed, never make new ones.

Keys travel as base64 of their 32 raw bytes; a private key file holds that one line.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError

from palaute_wire.errors import ManifestRefused

from .contract import ReleaseManifest


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what} is {len(raw)} bytes, an ed25519 key is 32")
    return raw


def load_private_key(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw32(Path(path).read_text(), f"{path}"))


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw32(text, "release public key"))


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write the key readable by its owner only; refuse to overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(private_key_text(key) + "\n")


def manifest_text(manifest: ReleaseManifest) -> str:
    """The exact text that is signed and sent (compact JSON, keys in model order)."""
    return manifest.model_dump_json(exclude_none=True)


def sign(key: Ed25519PrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode())).decode()


def verify(public_key: str | Ed25519PublicKey, text: str, signature: str | None) -> ReleaseManifest:
    """Return the manifest if ``signature`` is a valid signature of ``text`` by the key."""
    if not signature:
        raise ManifestRefused("the manifest is not signed")
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestRefused("the manifest signature is not base64") from None
    try:
        key.verify(sig, text.encode())
    except InvalidSignature:
        raise ManifestRefused("the manifest signature does not match this kiosk's release key") from None
    try:
        return ReleaseManifest.model_validate_json(text)
    except ValidationError as exc:
        raise ManifestRefused(f"the signed manifest is malformed: {exc.errors()[0]['msg']}") from None
