"""Safe XML parsing of pushes: fields, empties, duplicates and every declaration-based attack."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.wechat_push import message_xml
from intake.push_xml import PushXmlError, parse_push_xml
from tests.unit.webhook_support import VECTORS

XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><MsgType>text</MsgType><Content>&lol3;</Content></xml>"""


def test_v3_plaintext() -> None:
    fields = parse_push_xml(VECTORS["V3"]["plaintext"])
    assert fields == {
        "ToUserName": "gh_97417a04a28d",
        "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
        "CreateTime": "1715943329",
        "MsgType": "event",
        "Event": "debug_demo",
        "debug_str": "hello world",
    }


def test_fields_empties_attributes_and_nesting() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<xml><Content><![CDATA[井盖 <b>&amp; ]]]]><![CDATA[>]]></Content><Empty/><Blank></Blank>"
        '<Cdata><![CDATA[]]></Cdata><Attr kind="x">value</Attr><Escaped>a &lt; b</Escaped>'
        "<SendPicsInfo><Count>1</Count></SendPicsInfo></xml>"
    )
    assert parse_push_xml(xml.encode()) == {
        "Content": "井盖 <b>&amp; ]]>",
        "Empty": None,
        "Blank": None,
        "Cdata": None,
        "Attr": "value",
        "Escaped": "a < b",
        "SendPicsInfo": {"Count": "1"},
    }


def test_declaration_text_inside_cdata_is_ordinary_content() -> None:
    """A citizen may type '<!DOCTYPE' or '<!ENTITY': inside CDATA it is text, not markup."""
    xml = message_xml("text", "o1", "gh_1", 1, Content="<!DOCTYPE x [<!ENTITY a 'b'>]> &a;", MsgId=1)
    assert parse_push_xml(xml)["Content"] == "<!DOCTYPE x [<!ENTITY a 'b'>]> &a;"


def test_empty_root_gives_no_fields() -> None:
    assert parse_push_xml("<xml/>") == {}
    assert parse_push_xml("<xml></xml>") == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(XXE, "xml_declaration_refused", id="xxe-external-entity"),
        pytest.param(BILLION_LAUGHS, "xml_declaration_refused", id="billion-laughs"),
        pytest.param(
            '<!DOCTYPE xml SYSTEM "http://127.0.0.1/x.dtd"><xml/>', "xml_declaration_refused", id="dtd"
        ),
        pytest.param(
            '\ufeff<?xml version="1.0"?><!DOCTYPE xml><xml/>', "xml_declaration_refused", id="bom-dtd"
        ),
        pytest.param("<!ENTITY a 'b'><xml/>", "xml_declaration_refused", id="bare-entity"),
        pytest.param("<!-- c --><xml/>", "xml_declaration_refused", id="comment-before-root"),
        pytest.param("<xml><!DOCTYPE x><MsgType>text</MsgType></xml>", "xml_malformed", id="doctype-inside"),
        pytest.param("<xml><A>&undefined;</A></xml>", "xml_malformed", id="undefined-entity"),
        pytest.param("<root><MsgType>text</MsgType></root>", "xml_root_not_xml", id="root-not-xml"),
        pytest.param("<xmlx/>", "xml_root_not_xml", id="root-prefix"),
        pytest.param("hello", "xml_root_not_xml", id="not-xml"),
        pytest.param('{"MsgType": "text"}', "xml_root_not_xml", id="json"),
        pytest.param("<xml><MsgType>text</MsgType>", "xml_malformed", id="unclosed"),
        pytest.param("<xml></xml><xml></xml>", "xml_malformed", id="two-roots"),
        pytest.param("<xml>text<MsgType>text</MsgType></xml>", "xml_root_has_text", id="mixed-root"),
        pytest.param("<xml>only text</xml>", "xml_root_has_text", id="text-root"),
        pytest.param(
            "<xml><MsgType>text</MsgType><MsgType>event</MsgType></xml>", "xml_duplicate_element", id="dup"
        ),
        pytest.param("", "xml_empty", id="empty"),
        pytest.param("  \n ", "xml_empty", id="blank"),
        pytest.param(b"<xml><A>\xff</A></xml>", "xml_not_utf8", id="not-utf8"),
        pytest.param("<xml><A>\x00</A></xml>", "xml_malformed", id="nul"),
        pytest.param("<xml><A>\udcff</A></xml>", "xml_malformed", id="lone-surrogate"),
    ],
)
def test_unsafe_or_malformed_xml_is_refused(body: str | bytes, reason: str) -> None:
    with pytest.raises(PushXmlError) as raised:
        parse_push_xml(body)
    assert raised.value.reason == reason


def test_declarations_are_refused_before_the_parser_runs() -> None:
    with mock.patch("xmltodict.parse") as parse, pytest.raises(PushXmlError):
        parse_push_xml(BILLION_LAUGHS)
    parse.assert_not_called()


def test_parser_refuses_a_doctype_that_got_past_the_prolog_check() -> None:
    """Defence in depth: the parser itself refuses DOCTYPE and entity declarations."""
    with mock.patch("intake.push_xml._check_prolog"), pytest.raises(PushXmlError) as raised:
        parse_push_xml(BILLION_LAUGHS)
    assert raised.value.reason == "xml_malformed"


def test_size_cap() -> None:
    body = "<xml><Content>" + "x" * 100 + "</Content></xml>"
    assert parse_push_xml(body, max_bytes=len(body))["Content"] == "x" * 100
    with pytest.raises(PushXmlError) as raised:
        parse_push_xml(body, max_bytes=len(body) - 1)
    assert raised.value.reason == "xml_too_large"
    with pytest.raises(PushXmlError):
        parse_push_xml(body.encode(), max_bytes=len(body) - 1)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_raises_only_push_xml_error(body: str | bytes) -> None:
    try:
        fields = parse_push_xml(body)
    except PushXmlError:
        return
    assert isinstance(fields, dict)


@settings(max_examples=200, deadline=None)
@given(content=st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=200))
def test_text_round_trips_through_message_xml(content: str) -> None:
    fields = parse_push_xml(message_xml("text", "o1", "gh_1", 1, Content=content, MsgId=1))
    assert (fields["Content"] or "") == content.strip()
