"""An independent Digest client for the tests: the UAC side, written from RFC 7616 3.4
and RFC 2069 with hashlib alone, sharing no code with sipresponder/digest.py."""

from __future__ import annotations

import hashlib
import re

_HASHES = {"md5": "md5", "sha-256": "sha256", "sha-512-256": "sha512_256"}


def parse_challenge(value: str) -> dict[str, str]:
    """The directives of one ``Digest ...`` challenge (quoted or token values)."""
    assert value.startswith("Digest "), value
    out = {}
    for name, quoted, token in re.findall(r'([A-Za-z-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))',
                                          value[7:]):
        out[name.lower()] = quoted if quoted or not token else token
    return out


def authorization(challenge: dict[str, str], *, username: str, password: str, method: str,
                  uri: str, cnonce: str = "0a4f113b", nc: int = 1, qop: str | None = "auth",
                  response: str | None = None) -> str:
    """The Authorization value answering ``challenge``; ``qop=None`` for RFC 2069."""
    algorithm = challenge.get("algorithm", "MD5")
    base = algorithm.lower().removesuffix("-sess")
    def h(text: str) -> str:
        return hashlib.new(_HASHES[base], text.encode()).hexdigest()
    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.lower().endswith("-sess"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    ncv = f"{nc:08x}"
    if qop is None:
        digest = h(f"{ha1}:{nonce}:{ha2}")
    else:
        digest = h(f"{ha1}:{nonce}:{ncv}:{cnonce}:{qop}:{ha2}")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{response or digest}"', f"algorithm={algorithm}"]
    if qop is not None:
        parts += [f"qop={qop}", f"nc={ncv}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)
