"""ops secrets: values are checked before they are written, the AES key rotates in two steps, nothing leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.ops.cli import main
from devstack.resources import Stack
from tests.unit.ops_support import deploy_outputs

GOOD = {
    "token": "Tok3nFromConsole",
    "app_id": "wx0123456789abcdef",
    "app_secret": "0123456789abcdef0123456789abcdef",
    "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "original_id": "gh_97417a04a28d",
}
NEW_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
SECRET_VALUES = (GOOD["token"], GOOD["app_secret"], GOOD["encoding_aes_key"], NEW_AES_KEY)


def secret_document(stack: Stack) -> dict[str, str]:
    value = stack.client("secretsmanager").get_secret_value(SecretId=stack.ref("WeChatSecret"))[
        "SecretString"
    ]
    document: dict[str, str] = json.loads(value)
    return document


def run(stack: Stack, *arguments: str, answers: dict[str, str] | None = None) -> int:
    """Run `secrets` against the stack; prompts are answered from `answers` by field name."""

    def ask(prompt: str) -> str:
        return (answers or {}).get(prompt.split(" ", maxsplit=1)[0].rstrip(":"), "")

    return main(
        ["--stack-name", deploy_outputs(stack), "secrets", *arguments], ask_public=ask, ask_secret=ask
    )


def write_json(tmp_path: Path, document: dict[str, str]) -> Path:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def assert_no_secret_printed(output: str) -> None:
    for value in SECRET_VALUES:
        assert value not in output


def test_secrets_from_file_written(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a credentials file with valid values

    # WHEN the operator loads it
    status = run(stack, "--from-file", str(write_json(tmp_path, GOOD)))

    # THEN the secret holds exactly those values and the output names only the public ones
    captured = capsys.readouterr()
    assert status == 0
    assert secret_document(stack) == GOOD
    assert "app_id=wx0123456789abcdef" in captured.out
    assert "app_secret=set" in captured.out
    assert_no_secret_printed(captured.out + captured.err)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("token", "ab", "token: invalid, expected 3 to 32 letters or digits"),
        ("token", "has-dash", "token: invalid"),
        ("encoding_aes_key", "A" * 42, "encoding_aes_key: invalid, expected exactly 43 letters or digits"),
        ("encoding_aes_key", "A" * 42 + "=", "encoding_aes_key: invalid"),
        (
            "app_id",
            "wx0123456789ABCDEF",
            "app_id: invalid, expected 'wx' followed by 16 lowercase hex digits",
        ),
        ("app_id", "0123456789abcdef01", "app_id: invalid"),
        ("original_id", "97417a04a28d", "original_id: invalid, expected 'gh_'"),
        ("app_secret", "short", "app_secret: invalid, expected 32 letters or digits"),
        ("extra_field", "x", "extra_field: unknown field"),
    ],
)
def test_secrets_invalid_value_rejected(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, expected: str
) -> None:
    # GIVEN a secret with valid values and a file with one invalid value
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))
    before = secret_document(stack)
    capsys.readouterr()

    # WHEN the operator loads the file
    status = run(stack, "--from-file", str(write_json(tmp_path, {**GOOD, field: value})))

    # THEN the command fails naming the field and its rule, without the value, and the secret is unchanged
    error = capsys.readouterr().err
    assert status == 1
    assert expected in error
    assert value not in error.replace(expected, "")
    assert secret_document(stack) == before


def test_secrets_missing_field_rejected(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the template's first secret (a generated token, every other field empty) and a file without app_secret
    partial = {name: value for name, value in GOOD.items() if name != "app_secret"}
    stack.client("secretsmanager").put_secret_value(
        SecretId=stack.ref("WeChatSecret"),
        SecretString=json.dumps(
            {"token": "generated0token", "app_id": "", "app_secret": "", "encoding_aes_key": ""}
        ),
    )

    # WHEN the operator loads it
    status = run(stack, "--from-file", str(write_json(tmp_path, partial)))

    # THEN the command fails naming the missing field
    assert status == 1
    assert "app_secret: missing" in capsys.readouterr().err


def test_secrets_prompts_keep_current_values(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a secret with valid values
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))

    # WHEN the operator answers only the token prompt and presses Enter at the others
    status = run(stack, answers={"token": "NewToken42"})

    # THEN only the token changed
    assert status == 0
    assert secret_document(stack) == {**GOOD, "token": "NewToken42"}
    assert "NewToken42" not in capsys.readouterr().out


def test_secrets_rotation_keeps_previous_key(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a secret with valid values
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))

    # WHEN the operator starts a key switch, entering the new key at the hidden prompt
    status = run(stack, "--rotate-aes-key", answers={"new": NEW_AES_KEY})

    # THEN the new key is current and the old one stays as the previous key
    document = secret_document(stack)
    captured = capsys.readouterr()
    assert status == 0
    assert document["encoding_aes_key"] == NEW_AES_KEY
    assert document["previous_encoding_aes_key"] == GOOD["encoding_aes_key"]
    assert "previous_encoding_aes_key=set" in captured.out
    assert_no_secret_printed(captured.out + captured.err)


def test_secrets_finish_rotation_drops_previous(stack: Stack, tmp_path: Path) -> None:
    # GIVEN a key switch in progress
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))
    run(stack, "--rotate-aes-key", NEW_AES_KEY)

    # WHEN the operator finishes it
    status = run(stack, "--finish-rotation")

    # THEN only the new key is left
    document = secret_document(stack)
    assert status == 0
    assert document["encoding_aes_key"] == NEW_AES_KEY
    assert "previous_encoding_aes_key" not in document


def test_secrets_rotation_to_same_key_rejected(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a secret with valid values
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))

    # WHEN the operator "rotates" to the current key
    status = run(stack, "--rotate-aes-key", GOOD["encoding_aes_key"])

    # THEN the command fails and nothing changed
    assert status == 1
    assert "equals the current one" in capsys.readouterr().err
    assert "previous_encoding_aes_key" not in secret_document(stack)


def test_secrets_finish_without_rotation_rejected(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a secret without a key switch in progress
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))

    # WHEN the operator finishes a rotation
    status = run(stack, "--finish-rotation")

    # THEN the command fails and says why
    assert status == 1
    assert "no rotation in progress" in capsys.readouterr().err


def test_secrets_rotated_secret_read_by_functions(stack: Stack, tmp_path: Path) -> None:
    # GIVEN a key switch in progress
    run(stack, "--from-file", str(write_json(tmp_path, GOOD)))
    run(stack, "--rotate-aes-key", NEW_AES_KEY)

    # WHEN the functions' credentials model reads the secret
    from intake.credentials import WeChatCredentials

    credentials = WeChatCredentials.model_validate(secret_document(stack))

    # THEN it sees both keys, so the webhook decrypts with either during the switch
    assert credentials.encoding_aes_key == NEW_AES_KEY
    assert credentials.previous_encoding_aes_key == GOOD["encoding_aes_key"]
