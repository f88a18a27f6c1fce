"""Properties of push XML parsing: any input gives fields or PushXmlError, declarations never pass."""

from __future__ import annotations

import os
import string
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.push_xml import PushXmlError, parse_push_xml

PROPERTY = settings(max_examples=200, deadline=None, derandomize=bool(os.environ.get("CI")))
# Generating and parsing whole documents costs more; fewer examples keep the module within seconds.
DOCUMENT_PROPERTY = settings(PROPERTY, max_examples=100)

# Element names as XML allows them (a conservative subset) and text XML 1.0 can carry.
names = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + "_"),
    st.text(string.ascii_letters + string.digits + "_.-", max_size=15),
).filter(lambda name: not name.lower().startswith("xml"))
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=64,
)
declarations = st.sampled_from(
    [
        '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;">]>',
        '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">',
        "<!DOCTYPE xml>",
        '<!ENTITY a "b">',
        "<!ELEMENT xml ANY>",
        "<!doctype xml>",
    ]
)
whitespace = st.text(" \t\r\n", max_size=3)


def element(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


documents = st.dictionaries(names, xml_text, max_size=8)


def render(fields: dict[str, str]) -> str:
    return "<xml>" + "".join(element(name, value) for name, value in fields.items()) + "</xml>"


def parse_or_error(body: str | bytes) -> dict[str, object] | PushXmlError:
    try:
        return parse_push_xml(body, max_bytes=65536)
    except PushXmlError as err:
        return err


@PROPERTY
@given(body=st.text(max_size=512))
def test_push_xml_arbitrary_text_only_domain_error(body: str) -> None:
    # GIVEN any text, including lone surrogates

    # WHEN it is parsed
    result = parse_or_error(body)

    # THEN the result is a dict of fields or PushXmlError, never another exception
    assert isinstance(result, dict | PushXmlError)


@PROPERTY
@given(body=st.binary(max_size=512))
def test_push_xml_arbitrary_bytes_only_domain_error(body: bytes) -> None:
    # GIVEN any bytes, including invalid UTF-8

    # WHEN they are parsed
    result = parse_or_error(body)

    # THEN the result is a dict of fields or PushXmlError
    assert isinstance(result, dict | PushXmlError)


@DOCUMENT_PROPERTY
@given(fields=documents, prolog=st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n', "\ufeff"]))
def test_push_xml_well_formed_document_round_trip(fields: dict[str, str], prolog: str) -> None:
    # GIVEN a well-formed <xml> document of distinct elements with arbitrary text
    body = prolog + render(fields)

    # WHEN it is parsed
    parsed = parse_push_xml(body)

    # THEN each element comes back with its text stripped, an empty one as None
    assert parsed == {name: (value.strip() or None) for name, value in fields.items()}


@DOCUMENT_PROPERTY
@given(
    tree=st.recursive(
        xml_text.map(escape),
        lambda children: st.lists(st.tuples(names, children), max_size=4).map(
            lambda items: "".join(f"<{name}>{child}</{name}>" for name, child in items)
        ),
        max_leaves=12,
    ),
    root=st.sampled_from(["xml", "root", "XML"]),
)
def test_push_xml_arbitrary_well_formed_tree_only_domain_error(tree: str, root: str) -> None:
    # GIVEN any well-formed tree, nested, repeated or mixed with text, under any root

    # WHEN it is parsed
    result = parse_or_error(f"<{root}>{tree}</{root}>")

    # THEN the result is a dict or PushXmlError, and another root is always refused
    assert isinstance(result, dict | PushXmlError)
    assert root == "xml" or isinstance(result, PushXmlError)


@DOCUMENT_PROPERTY
@given(
    fields=documents,
    declaration=declarations,
    before=whitespace,
    after=whitespace,
    xml_declaration=st.booleans(),
    position=st.integers(min_value=0, max_value=9),
)
def test_push_xml_declarations_always_refused(
    fields: dict[str, str],
    declaration: str,
    before: str,
    after: str,
    xml_declaration: bool,
    position: int,
) -> None:
    # GIVEN a valid push with a DOCTYPE or markup declaration before the root or between its elements
    parts = [element(name, value) for name, value in fields.items()]
    index = position % (len(parts) + 1)
    if position % 2:
        body = "<xml>" + "".join(parts[:index]) + declaration + "".join(parts[index:]) + "</xml>"
    else:
        body = before + declaration + after + render(fields)
    if xml_declaration:
        body = '<?xml version="1.0"?>' + body

    # WHEN it is parsed
    # THEN it is refused
    with pytest.raises(PushXmlError):
        parse_push_xml(body)


@DOCUMENT_PROPERTY
@given(fields=documents, name=names, entity=st.text(string.ascii_lowercase, min_size=1, max_size=8))
def test_push_xml_undeclared_entity_never_expanded(fields: dict[str, str], name: str, entity: str) -> None:
    # GIVEN a document that references an entity it never declares
    fields = {**fields, name: ""}
    body = render(fields).replace(f"<{name}></{name}>", f"<{name}>&{entity};</{name}>")

    # WHEN it is parsed
    # THEN it is refused instead of being expanded or passed through
    with pytest.raises(PushXmlError):
        parse_push_xml(body)


@PROPERTY
@given(size=st.integers(min_value=1, max_value=4096), text=st.text(string.ascii_letters, min_size=1))
def test_push_xml_size_cap(size: int, text: str) -> None:
    # GIVEN a body longer than the cap
    body = "<xml><Content>" + text * (size // len(text) + 1) + "</Content></xml>"

    # WHEN it is parsed with a cap one byte under its size
    # THEN it is refused as too large
    with pytest.raises(PushXmlError) as caught:
        parse_push_xml(body, max_bytes=len(body.encode()) - 1)
    assert caught.value.reason == "xml_too_large"
