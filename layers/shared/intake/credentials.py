"""WeChat credentials from Secrets Manager, read through Powertools Parameters with a cache."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from intake.settings import get_settings

# Seconds a cold-started function keeps the secret before reading it again; a rotated secret
# reaches every function within this time.
SECRET_CACHE_SECONDS = 300


class WeChatCredentials(BaseModel):
    """The secret's JSON document. `previous_encoding_aes_key` keeps the old key valid during a switch."""

    # hide_input_in_errors: a validation error's text must never carry a secret into a log.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    token: str = Field(min_length=3, max_length=32)
    app_id: str = Field(min_length=1, max_length=64)
    app_secret: str = Field(default="", max_length=128)
    encoding_aes_key: str = Field(default="", max_length=43)
    previous_encoding_aes_key: str | None = Field(default=None, max_length=43)
    # The account's original id (gh_...), which WeChat sends as ToUserName; empty skips that check.
    original_id: str = Field(default="", max_length=64)

    def __repr__(self) -> str:
        return f"WeChatCredentials(app_id={self.app_id!r}, secrets hidden)"

    __str__ = __repr__


def get_wechat_credentials(max_age: int = SECRET_CACHE_SECONDS) -> WeChatCredentials:
    """Return the WeChat credentials; raises when the secret is missing or malformed."""
    # Imported here because Powertools Parameters pulls in boto3 at import time.
    from aws_lambda_powertools.utilities import parameters

    document = parameters.get_secret(get_settings().wechat_secret_id, transform="json", max_age=max_age)
    return WeChatCredentials.model_validate(document)
