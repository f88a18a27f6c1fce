"""The WeChat custom menu (自定义菜单): check a menu file and publish it (`python -m devstack.ops menu`).

The file is the JSON body of `cgi-bin/menu/create` plus the file's own `version`:
`{"version": "...", "button": [...]}`. The version is not sent to WeChat (which keeps no version) but
printed with the published menu, so the operator can tell which file is live. WeChat's limits are
checked before anything is sent: 1 to 3 top-level buttons with names of at most 16 bytes (UTF-8), at
most 5 sub-buttons with names of at most 60 bytes, keys of at most 128 bytes and URLs of at most 1024
bytes. A `click` button must use a key that ticket-write serves, because ticket-write ignores every
other key and the citizen would get no answer: a self-service key (`intake.conversation.MENU_ACTIONS`)
or `KB:<entry_id>`, which replies with that knowledge entry's answer (办事指南). Before publishing,
every `KB:` key must name an entry that is active today in the stack's knowledge base.

The menu is sent with the stack's shared access token (`intake.access_token.AccessTokenProvider`),
so publishing it never invalidates the token that the functions use.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devstack.ops.stack_outputs import StackTarget
from devstack.ops.wechat_secret import read_credentials

logger = logging.getLogger(__name__)

MENU_CREATE_PATH = "cgi-bin/menu/create"
MAX_TOP_LEVEL_BUTTONS = 3
MAX_SUB_BUTTONS = 5
TOP_LEVEL_NAME_BYTES = 16
SUB_BUTTON_NAME_BYTES = 60
KEY_BYTES = 128
URL_BYTES = 1024
# Prefix of the click keys that name a knowledge entry; the rest of the key is the entry id.
GUIDE_KEY_PREFIX = "KB:"
GUIDE_KEY_PATTERN = re.compile(r"^KB:[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

ButtonType = Literal[
    "click",
    "view",
    "miniprogram",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "article_view_limited",
]
# The field each button type needs besides its name.
_REQUIRED_FIELD = {
    "view": "url",
    "miniprogram": "pagepath",
    "media_id": "media_id",
    "article_id": "article_id",
    "article_view_limited": "article_id",
}


class MenuFileError(ValueError):
    """The menu file is missing, not JSON, or breaks WeChat's or ticket-write's rules."""


def _utf8_length(value: str) -> int:
    return len(value.encode("utf-8"))


class MenuButton(BaseModel):
    """One button; a top-level button either has `sub_button` entries or a type of its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: ButtonType | None = None
    key: str | None = None
    url: str | None = None
    appid: str | None = None
    pagepath: str | None = None
    media_id: str | None = None
    article_id: str | None = None
    sub_button: list[MenuButton] = Field(default_factory=list, max_length=MAX_SUB_BUTTONS)

    @field_validator("name")
    @classmethod
    def _name_fits(cls, name: str) -> str:
        if _utf8_length(name) > SUB_BUTTON_NAME_BYTES:
            raise ValueError(f"name is {_utf8_length(name)} bytes in UTF-8, at most {SUB_BUTTON_NAME_BYTES}")
        return name

    @field_validator("key")
    @classmethod
    def _key_fits(cls, key: str | None) -> str | None:
        if key is not None and not 1 <= _utf8_length(key) <= KEY_BYTES:
            raise ValueError(f"key must be 1 to {KEY_BYTES} bytes")
        return key

    @field_validator("url")
    @classmethod
    def _url_fits(cls, url: str | None) -> str | None:
        if url is not None and (not url.startswith(("https://", "http://")) or _utf8_length(url) > URL_BYTES):
            raise ValueError(f"url must start with https:// or http:// and be at most {URL_BYTES} bytes")
        return url

    @model_validator(mode="after")
    def _fields_match_type(self) -> MenuButton:
        if self.sub_button:
            if any(button.sub_button for button in self.sub_button):
                raise ValueError("a sub-button cannot have sub-buttons")
            return self
        if self.type is None:
            raise ValueError("a button without sub_button needs a type")
        required = _REQUIRED_FIELD.get(self.type, "key")
        if getattr(self, required) is None:
            raise ValueError(f"a {self.type} button needs {required}")
        if self.type == "miniprogram" and (self.appid is None or self.url is None):
            raise ValueError("a miniprogram button needs appid, pagepath and url (shown on old clients)")
        return self

    def buttons(self) -> Iterator[MenuButton]:
        yield self
        yield from self.sub_button

    def to_wechat(self) -> dict[str, Any]:
        document = self.model_dump(exclude_none=True, exclude={"sub_button"})
        if self.sub_button:
            document["sub_button"] = [button.to_wechat() for button in self.sub_button]
        return document


class Menu(BaseModel):
    """The menu file: the body of `cgi-bin/menu/create` and the file's version."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._-]+$")
    button: list[MenuButton] = Field(min_length=1, max_length=MAX_TOP_LEVEL_BUTTONS)

    @field_validator("button")
    @classmethod
    def _top_level_names_fit(cls, buttons: list[MenuButton]) -> list[MenuButton]:
        for button in buttons:
            if _utf8_length(button.name) > TOP_LEVEL_NAME_BYTES:
                raise ValueError(
                    f"top-level name {button.name!r} is {_utf8_length(button.name)} bytes in UTF-8, "
                    f"at most {TOP_LEVEL_NAME_BYTES}"
                )
        return buttons

    def all_buttons(self) -> list[MenuButton]:
        return [each for button in self.button for each in button.buttons()]

    def click_keys(self) -> list[str]:
        return [button.key for button in self.all_buttons() if button.type == "click" and button.key]

    def guide_entry_ids(self) -> list[str]:
        """Return the knowledge entry ids that `KB:` click keys name, in menu order."""
        return [
            key.removeprefix(GUIDE_KEY_PREFIX)
            for key in self.click_keys()
            if key.startswith(GUIDE_KEY_PREFIX)
        ]

    def to_wechat(self) -> dict[str, Any]:
        return {"button": [button.to_wechat() for button in self.button]}


def _validation_summary(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'menu'}: {error['msg']}"
        for error in err.errors(include_url=False)
    )


def load_menu(path: Path, known_click_keys: set[str]) -> Menu:
    """Read and check a menu file; raises MenuFileError that names the file and each problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MenuFileError(f"cannot read menu file {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise MenuFileError(
            f"menu file {path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    try:
        menu = Menu.model_validate(document)
    except ValidationError as err:
        raise MenuFileError(f"menu file {path} is invalid: {_validation_summary(err)}") from err
    unknown = sorted(
        key for key in set(menu.click_keys()) - known_click_keys if not GUIDE_KEY_PATTERN.match(key)
    )
    if unknown:
        raise MenuFileError(
            f"menu file {path} uses click keys that ticket-write does not handle: {', '.join(unknown)}; "
            f"use one of {', '.join(sorted(known_click_keys))}, KB:<knowledge entry id> or a view button"
        )
    return menu


def check_guide_entries(target: StackTarget, menu: Menu) -> None:
    """Raise MenuFileError unless every `KB:` key names an entry that is active today in the stack."""
    from intake.knowledge_base import KnowledgeRepository, china_today

    repository = KnowledgeRepository(target.resource("dynamodb").Table(target.output("TicketsTableName")))
    today = china_today()
    unserved = []
    for entry_id in menu.guide_entry_ids():
        entry = repository.get(entry_id)
        if entry is None or entry.status != "active" or not entry.is_valid_on(today):
            unserved.append(f"{GUIDE_KEY_PREFIX}{entry_id}")
    if unserved:
        raise MenuFileError(
            f"menu click keys name knowledge entries that are missing, retired or not valid today: "
            f"{', '.join(unserved)}; import them (python -m devstack.ops knowledge-import) or change the menu"
        )


def known_click_keys() -> set[str]:
    from intake.conversation import MENU_ACTIONS

    return set(MENU_ACTIONS)


def publish_menu(target: StackTarget, menu: Menu, wechat_api_base: str) -> dict[str, Any]:
    """Check the `KB:` keys against the stack, then create or replace the menu; return what was published.

    Raises MenuFileError before WeChat is called when a `KB:` key names no active entry.
    """
    from intake.access_token import AccessTokenProvider, StableTokenFetcher
    from intake.wechat_api import WeChatApiClient

    check_guide_entries(target, menu)
    credentials = read_credentials(target)
    tokens = AccessTokenProvider(
        app_id=credentials.app_id,
        table=target.resource("dynamodb").Table(target.output("TicketsTableName")),
        kms=target.client("kms"),
        kms_key_id=target.output("DataKeyArn"),
        fetch=StableTokenFetcher(wechat_api_base, credentials=lambda: credentials),
    )
    WeChatApiClient(wechat_api_base, tokens).call_json("POST", MENU_CREATE_PATH, payload=menu.to_wechat())
    logger.info(
        "menu version %s published: %d top-level buttons, %d buttons in all",
        menu.version or "(none)",
        len(menu.button),
        len(menu.all_buttons()),
    )
    return {
        "published": True,
        "version": menu.version,
        "buttons": len(menu.all_buttons()),
        "click_keys": menu.click_keys(),
    }
