"""Password hashing with argon2id (argon2-cffi) and the password rules."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from meetings.errors import N_, FieldError

_hasher = PasswordHasher()
MIN_LENGTH = 8
MAX_LENGTH = 256

# A hash of a random password, verified against when the email is unknown so that
# the answer takes as long as for a known account.
_DUMMY_HASH = _hasher.hash("not-a-real-password-giaoban")


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when the password matches; always spends the hashing time."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)


def password_problems(password: str, field: str = "password") -> list[FieldError]:
    """What is wrong with a new password, if anything."""
    if len(password) < MIN_LENGTH:
        return [FieldError(field, N_("Use at least %(n)s characters."), {"n": MIN_LENGTH})]
    if len(password) > MAX_LENGTH:
        return [FieldError(field, N_("Use at most %(n)s characters."), {"n": MAX_LENGTH})]
    return []
