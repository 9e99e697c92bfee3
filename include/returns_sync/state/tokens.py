"""Fernet encryption of secrets kept in the store (the rotated Whiplash refresh token).

The key is Airflow's `[core] fernet_key`, handed in by the caller so this package never imports
Airflow. Like Airflow, a comma-separated list of keys is accepted for key rotation: the first
key encrypts, every key is tried to decrypt.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from include.returns_sync.state.errors import TokenKeyError


def fernet_for(key: str | bytes) -> MultiFernet:
    """Build the cipher for `key` (one key or Airflow's comma-separated rotation list)."""
    text = key.decode() if isinstance(key, bytes) else key
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not parts:
        raise TokenKeyError(
            "fernet_key is empty; configure Airflow's [core] fernet_key to store tokens"
        )
    try:
        return MultiFernet([Fernet(part.encode()) for part in parts])
    except ValueError:
        raise TokenKeyError(
            "fernet_key is not a valid Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def encrypt(secret: str, key: str | bytes) -> str:
    """Ciphertext of `secret` as text."""
    return fernet_for(key).encrypt(secret.encode()).decode("ascii")


def decrypt(ciphertext: str, key: str | bytes, *, name: str) -> str:
    """Clear text of a stored secret; a wrong key is an error, never a silent None."""
    try:
        return fernet_for(key).decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken:
        raise TokenKeyError(
            f"stored token {name!r} cannot be decrypted with the given fernet_key "
            "(was the key rotated without keeping the old one?)"
        ) from None
