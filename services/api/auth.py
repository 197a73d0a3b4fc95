"""Optional credentials for the HTTP API: an API key (``X-API-Key`` header, or
``Authorization: Bearer <key>``) or HTTP basic auth, compared in constant time. The OpenAPI
document names the scheme, so /docs offers to fill it in."""

import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Security
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from .settings import AuthSettings

REALM = "vsa"


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (the time taken does not tell how much of a guess was right)."""
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _refused(scheme: str) -> HTTPException:
    challenge = f'Basic realm="{REALM}"' if scheme == "basic" else "Bearer"
    return HTTPException(401, "credentials missing or wrong", {"WWW-Authenticate": challenge})


def _api_key_check(expected: str) -> Callable[..., None]:
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")
    bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")

    def check(
        key: Annotated[str | None, Security(header)],
        token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        given = key if key is not None else (token.credentials if token is not None else None)
        if given is None or not same_secret(given, expected):
            raise _refused("api_key")

    return check


def _basic_check(username: str, password: str) -> Callable[..., None]:
    basic = HTTPBasic(auto_error=False, realm=REALM)

    def check(credentials: Annotated[HTTPBasicCredentials | None, Security(basic)]) -> None:
        if credentials is None:
            raise _refused("basic")
        user_ok = same_secret(credentials.username, username)
        password_ok = same_secret(credentials.password, password)  # both, always: no timing hint
        if not (user_ok and password_ok):
            raise _refused("basic")

    return check


def auth_dependencies(auth: AuthSettings) -> list[Any]:
    """Dependencies that guard a router under ``auth`` (none for mode ``none``)."""
    if auth.mode == "api_key" and auth.api_key is not None:
        return [Depends(_api_key_check(auth.api_key.get_secret_value()))]
    if auth.mode == "basic" and auth.username is not None and auth.password is not None:
        return [Depends(_basic_check(auth.username, auth.password.get_secret_value()))]
    return []
