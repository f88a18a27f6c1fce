"""WeChatApiClient and the token store against the WeChat emulator on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from devstack.resources import Stack
from devstack.wechat_emulator import SAMPLE_MEDIA, Fault, WeChatEmulator, start_emulator
from intake.access_token import AccessTokenProvider, StableTokenFetcher
from intake.credentials import WeChatCredentials
from intake.wechat_api import WeChatApiClient, WeChatApiError, WeChatTransportError
from tests.conftest import DEFAULT_CREDENTIALS
from tests.unit.test_access_token import AtomicTable

MENU = {"button": [{"type": "click", "name": "查询", "key": "QUERY"}]}


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def make_provider(stack: Stack, emulator: WeChatEmulator) -> Callable[[], AccessTokenProvider]:
    table = AtomicTable(boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable")))
    kms = boto3.client("kms", region_name="us-east-1")
    credentials = WeChatCredentials.model_validate(DEFAULT_CREDENTIALS)

    def make() -> AccessTokenProvider:
        return AccessTokenProvider(
            app_id=credentials.app_id,
            table=table,
            kms=kms,
            kms_key_id=stack.attribute("DataKey", "Arn"),
            fetch=StableTokenFetcher(emulator.url, credentials=lambda: credentials),
        )

    return make


def _stable_token_calls(emulator: WeChatEmulator) -> int:
    return sum(1 for call in emulator.calls if call["api"] == "stable_token")


def test_call_json_returns_answer(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    client = WeChatApiClient(emulator.url, make_provider())

    answer = client.call_json("POST", "cgi-bin/menu/create", MENU)

    assert answer == {"errcode": 0, "errmsg": "ok"}


def test_call_json_recovers_invalidated_token_once(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    client = WeChatApiClient(emulator.url, make_provider())
    client.call_json("POST", "cgi-bin/menu/create", MENU)
    emulator.state.invalidate_tokens()

    answer = client.call_json("POST", "cgi-bin/menu/create", MENU)

    assert answer["errcode"] == 0
    assert _stable_token_calls(emulator) == 2
    assert [call["errcode"] for call in emulator.calls if call["api"] == "menu/create"] == [0, 40001, 0]


def test_call_json_error_names_errcode_not_token(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    provider = make_provider()
    client = WeChatApiClient(emulator.url, provider)

    with pytest.raises(WeChatApiError) as caught:
        client.call_json("GET", "cgi-bin/menu/get")

    assert caught.value.errcode == 46003
    assert provider.get() not in str(caught.value)


def test_call_json_5xx_is_transport_error_without_token(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    provider = make_provider()
    client = WeChatApiClient(emulator.url, provider)
    emulator.state.add_fault(Fault(api="menu/create", http_status=503))

    with pytest.raises(WeChatTransportError) as caught:
        client.call_json("POST", "cgi-bin/menu/create", MENU)

    assert "503" in str(caught.value)
    assert provider.get() not in str(caught.value)


def test_call_json_timeout_is_transport_error(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    provider = make_provider()
    provider.get()
    client = WeChatApiClient(emulator.url, provider, timeout=0.2)
    emulator.state.add_fault(Fault(api="menu/create", latency_ms=1000))

    with pytest.raises(WeChatTransportError) as caught:
        client.call_json("POST", "cgi-bin/menu/create", MENU)

    assert provider.get() not in str(caught.value)


def test_open_media_streams_image_bytes(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    emulator.state.register_media("IMG1", "image")
    client = WeChatApiClient(emulator.url, make_provider())

    with client.open_media("IMG1") as media:
        body = media.read()

    assert body == (SAMPLE_MEDIA / "sample.jpg").read_bytes()
    assert media.source == "media_get"


def test_open_media_follows_video_url(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    emulator.state.register_media("VID1", "video")
    client = WeChatApiClient(emulator.url, make_provider())

    with client.open_media("VID1") as media:
        body = media.read()

    assert body == (SAMPLE_MEDIA / "sample.mp4").read_bytes()
    assert media.source == "video_url"


def test_open_media_text_plain_error_raises(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    emulator.state.media_error_content_type = "text/plain"
    client = WeChatApiClient(emulator.url, make_provider())

    with pytest.raises(WeChatApiError) as caught:
        client.open_media("MISSING")

    assert caught.value.errcode == 40007


def test_concurrent_expired_token_one_stable_token_call(
    emulator: WeChatEmulator,
    make_provider: Callable[[], AccessTokenProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a stored token that has expired, and 50 instances (one provider each, as containers)
    from intake import clock

    make_provider().get()
    later = clock.now() + 7200 + 60
    monkeypatch.setattr(clock, "now", lambda: later)
    emulator.state.clock_offset += 7200 + 60
    providers = [make_provider() for _ in range(50)]
    barrier = threading.Barrier(50)
    results: list[str] = []

    def call(provider: AccessTokenProvider) -> None:
        barrier.wait()
        results.append(provider.get())

    # WHEN all ask for the token at once
    threads = [threading.Thread(target=call, args=(provider,)) for provider in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # THEN WeChat saw exactly one more stable_token call and every instance got its token
    assert _stable_token_calls(emulator) == 2
    assert len(results) == 50
    assert len(set(results)) == 1


def test_stable_token_ip_not_allowed_logs_hint(
    emulator: WeChatEmulator,
    make_provider: Callable[[], AccessTokenProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.state.add_fault(Fault(api="stable_token", errcode=40164))

    with pytest.raises(WeChatApiError) as caught:
        make_provider().get()

    records: list[Any] = [record for record in caplog.records if "IP address" in record.getMessage()]
    assert caught.value.errcode == 40164
    assert len(records) == 1
    assert "IP白名单" in records[0].hint


def _uploaded_digests(emulator: WeChatEmulator) -> list[str | None]:
    return [call["payload"].get("sha256") for call in emulator.calls if call["api"] == "media/upload"]


def test_upload_media_returns_media_id_of_the_bytes(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    image = (SAMPLE_MEDIA / "sample.jpg").read_bytes()
    client = WeChatApiClient(emulator.url, make_provider())

    media_id = client.upload_media("image", "answer.jpg", image, "image/jpeg")

    with client.open_media(media_id) as media:
        body = media.read()
    assert body == image
    assert _uploaded_digests(emulator) == [hashlib.sha256(image).hexdigest()]


def test_upload_media_reads_a_stream(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    voice = (SAMPLE_MEDIA / "sample.amr").read_bytes()
    client = WeChatApiClient(emulator.url, make_provider())

    media_id = client.upload_media("voice", "answer.amr", io.BytesIO(voice), "audio/amr")

    assert emulator.state.media[media_id].data == voice


def test_upload_media_recovers_invalidated_token_once(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    image = (SAMPLE_MEDIA / "sample.jpg").read_bytes()
    client = WeChatApiClient(emulator.url, make_provider())
    client.call_json("POST", "cgi-bin/menu/create", MENU)
    emulator.state.invalidate_tokens()

    media_id = client.upload_media("image", "answer.jpg", image, "image/jpeg")

    assert media_id in emulator.state.media
    assert _stable_token_calls(emulator) == 2
    assert [call["errcode"] for call in emulator.calls if call["api"] == "media/upload"] == [40001, 0]
    assert _uploaded_digests(emulator) == [hashlib.sha256(image).hexdigest()] * 2


def test_upload_media_wrong_file_type_raises_errcode_without_token(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    provider = make_provider()
    client = WeChatApiClient(emulator.url, provider)

    with pytest.raises(WeChatApiError) as caught:
        client.upload_media("image", "answer.amr", (SAMPLE_MEDIA / "sample.amr").read_bytes(), "audio/amr")

    assert caught.value.errcode == 40005
    assert caught.value.path == "cgi-bin/media/upload"
    assert provider.get() not in str(caught.value)
    assert emulator.state.media == {}


def test_upload_media_unknown_type_is_refused_before_sending(
    emulator: WeChatEmulator, make_provider: Callable[[], AccessTokenProvider]
) -> None:
    client = WeChatApiClient(emulator.url, make_provider())

    with pytest.raises(ValueError, match="media_type 'document'"):
        client.upload_media("document", "a.pdf", b"%PDF-1.7", "application/pdf")

    assert emulator.calls == []
