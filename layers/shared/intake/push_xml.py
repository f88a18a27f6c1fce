"""Safe parsing of the XML that WeChat pushes, into a flat dict of WeChat's element names.

Rules, in order:
- the text must be UTF-8 and at most `max_bytes` long (the caller checks the raw body first);
- the prolog may hold only an XML declaration: any `<!DOCTYPE`, `<!ENTITY` or other markup
  declaration before the root is refused before the parser sees the text (XXE, billion laughs).
  Declarations cannot legally appear after the root starts, and the parser refuses them there too
  (xmltodict refuses entity declarations; the parser here also refuses any DOCTYPE);
- the root element must be `<xml>` and hold elements only (no text of its own);
- an element that appears twice at the top level is refused: xmltodict would turn it into a list,
  and a push's fields are single values (two `MsgType`s would make the type ambiguous);
- empty elements become None; attributes are ignored; text is stripped of surrounding whitespace;
- nested elements (a few menu events carry them) are kept as xmltodict's nested dicts.

Every failure raises `PushXmlError`, whose `reason` is a short code for logs.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

ROOT = "xml"

# Optional BOM, whitespace and XML declaration, then the root start tag `<xml>`, `<xml ...>` or `<xml/>`.
_PROLOG = re.compile(r"\ufeff?[ \t\r\n]*(?:<\?xml[^<>]*\?>[ \t\r\n]*)?<xml[ \t\r\n/>]")
_DECLARATION = re.compile(r"<!(?!\[CDATA\[)")


class PushXmlError(ValueError):
    """The XML is not a well-formed, declaration-free `<xml>` document of single-valued fields."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_doctype(*_args: Any) -> None:
    raise ValueError("DOCTYPE is not allowed")


class _GuardedExpat:
    """Stands in for the `expat` module given to xmltodict: its parsers also refuse any DOCTYPE."""

    ExpatError = expat.ExpatError

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:  # mirrors expat's API
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        return parser


def _check_prolog(text: str) -> None:
    match = _PROLOG.match(text)
    if match is None:
        # Name the common attack in the reason when it is there; the answer is the same.
        prolog = text[:4096]
        if _DECLARATION.search(prolog.split("<xml", 1)[0]):
            raise PushXmlError("xml_declaration_refused")
        raise PushXmlError("xml_root_not_xml")


def _text(body: str | bytes, max_bytes: int | None) -> str:
    if isinstance(body, bytes):
        if max_bytes is not None and len(body) > max_bytes:
            raise PushXmlError("xml_too_large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PushXmlError("xml_not_utf8") from err
    elif isinstance(body, str):
        text = body
        if max_bytes is not None and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise PushXmlError("xml_too_large")
    else:
        raise PushXmlError("xml_not_text")
    if not text.strip():
        raise PushXmlError("xml_empty")
    return text


def parse_push_xml(body: str | bytes, max_bytes: int | None = None) -> dict[str, Any]:
    """Return the top-level fields of a push document; raise `PushXmlError` when it is unsafe or malformed."""
    text = _text(body, max_bytes)
    _check_prolog(text)

    import xmltodict

    try:
        document = xmltodict.parse(text, disable_entities=True, xml_attribs=False, expat=_GuardedExpat)
    except (expat.ExpatError, ValueError) as err:
        raise PushXmlError("xml_malformed") from err
    except Exception as err:  # xmltodict's own exceptions or anything unexpected in the parser
        raise PushXmlError("xml_malformed") from err

    if not isinstance(document, dict) or list(document) != [ROOT]:
        raise PushXmlError("xml_root_not_xml")
    root = document[ROOT]
    if root is None:
        return {}
    if not isinstance(root, dict):
        raise PushXmlError("xml_root_has_text")
    fields: dict[str, Any] = {}
    for name, value in root.items():
        if name.startswith("#"):
            raise PushXmlError("xml_root_has_text")
        if isinstance(value, list):
            raise PushXmlError("xml_duplicate_element")
        fields[name] = value
    return fields
