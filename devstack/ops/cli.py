"""Command line of the ops tool: `python -m devstack.ops [--stack-name NAME | --endpoint-url URL] COMMAND`.

`--stack-name` works on a deployed stack with the usual AWS credentials (`--profile`, `--region` or
the AWS_* variables). `--endpoint-url` works on the local stack (`make local`) with fake credentials,
so it can never reach a real account. Exit status: 0 done, 1 failed (the error message names the cause and what
to do), 2 invalid command line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack.ops.knowledge_import import import_into_stack
from devstack.ops.menu import MenuFileError, known_click_keys, load_menu, publish_menu
from devstack.ops.notice_resend import NoticeNotResendableError, resend_notice
from devstack.ops.redrive import QUEUE_OUTPUTS, redrive_queue
from devstack.ops.stack_outputs import (
    LOCAL_STACK_NAME,
    StackOutputError,
    StackTarget,
    from_cloudformation,
    from_local_stack,
)
from devstack.ops.ticket_export import export_tickets, render
from devstack.ops.wechat_secret import (
    SecretValueError,
    WeChatSecretStore,
    describe,
    prompt_values,
    secret_id,
    update_secret,
)
from intake.knowledge_base import KnowledgeImportError

logger = logging.getLogger("devstack.ops")

DEFAULT_WECHAT_API_BASE = "https://api.weixin.qq.com"
LOCAL_REGION = "us-east-1"
# --rotate-aes-key without a value: read the new key with a hidden prompt instead of the command line.
PROMPT = object()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.ops",
        description="Operations on a deployed WeChat intake stack (--stack-name) or the local stack (--endpoint-url).",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack-name", help="deployed stack whose outputs name the resources")
    where.add_argument("--endpoint-url", help="endpoint of the local stack's moto server (fake credentials)")
    parser.add_argument(
        "--local-stack-name",
        default=LOCAL_STACK_NAME,
        help="stack name the local stack uses for its resources",
    )
    parser.add_argument("--region", help="AWS region, for example cn-northwest-1 (default: the AWS config)")
    parser.add_argument("--profile", help="AWS profile to use with --stack-name")
    commands = parser.add_subparsers(dest="command", required=True)

    secrets = commands.add_parser("secrets", help="set, check or rotate the WeChat credentials")
    secrets.add_argument("--secret-id", help="secret name or ARN (default: stack output WeChatSecretArn)")
    secrets.add_argument(
        "--from-file",
        type=Path,
        help="JSON file with token, app_id, app_secret, encoding_aes_key, original_id",
    )
    change = secrets.add_mutually_exclusive_group()
    change.add_argument(
        "--rotate-aes-key",
        nargs="?",
        const=PROMPT,
        metavar="NEW_KEY",
        help="make NEW_KEY the EncodingAESKey and keep the current one as previous (no value: prompt)",
    )
    change.add_argument(
        "--finish-rotation", action="store_true", help="drop the previous EncodingAESKey after the switch"
    )
    secrets.add_argument("--show", action="store_true", help="only print which values are set")

    redrive = commands.add_parser("redrive", help="move dead-letter messages back to their source queue")
    redrive.add_argument("--queue", required=True, choices=sorted(QUEUE_OUTPUTS))
    redrive.add_argument("--max-messages", type=int, help="move at most this many messages (default: all)")
    redrive.add_argument(
        "--wait-seconds",
        type=int,
        default=2,
        choices=range(21),
        metavar="0-20",
        help="long-poll seconds of each receive; an empty long poll ends the redrive (default: 2)",
    )

    menu = commands.add_parser("menu", help="check and publish the WeChat custom menu")
    menu.add_argument("--file", type=Path, required=True, help="menu JSON, for example events/menu.json")
    menu.add_argument("--wechat-api-base", default=DEFAULT_WECHAT_API_BASE, help="WeChat API base URL")
    menu.add_argument("--check-only", action="store_true", help="check the file without publishing it")

    resend = commands.add_parser("resend-notice", help="publish a failed notice to a citizen again")
    resend.add_argument("--notice-id", required=True)

    export = commands.add_parser("export", help="export the tickets created in a date range")
    export.add_argument(
        "--from",
        dest="first_day",
        type=date.fromisoformat,
        required=True,
        help="first day of creation, YYYY-MM-DD in China Standard Time (UTC+8)",
    )
    export.add_argument(
        "--to",
        dest="last_day",
        type=date.fromisoformat,
        required=True,
        help="last day of creation (included), YYYY-MM-DD in China Standard Time (UTC+8)",
    )
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.add_argument(
        "--include-openid", action="store_true", help="add the citizens' OpenIDs (personal data)"
    )

    knowledge = commands.add_parser(
        "knowledge-import", help="create or replace knowledge-base entries from a JSON or CSV file"
    )
    source = knowledge.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="JSON array of entries, or CSV with a header row")
    source.add_argument(
        "--starter", action="store_true", help="create the shipped example entries whose ids the base lacks"
    )
    return parser


def build_target(args: argparse.Namespace) -> StackTarget:
    if args.endpoint_url:
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the local stack accepts any credentials
            region_name=args.region or LOCAL_REGION,
        )
        return from_local_stack(session, args.endpoint_url, args.local_stack_name)
    if args.stack_name:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        return from_cloudformation(session, args.stack_name)
    raise StackOutputError("name the stack: --stack-name NAME (deployed) or --endpoint-url URL (local stack)")


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SecretValueError(f"cannot read {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise SecretValueError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno})") from err
    if not isinstance(document, dict):
        raise SecretValueError(f"{path} must contain a JSON object")
    return document


# -- commands ---------------------------------------------------------------------------------------


def run_secrets(
    args: argparse.Namespace,
    target: StackTarget,
    ask_public: Callable[[str], str],
    ask_secret: Callable[[str], str],
) -> int:
    store = WeChatSecretStore(target.client("secretsmanager"), secret_id(target, args.secret_id))
    if args.show:
        print(describe(store.read() or {}))
        return 0
    updates: dict[str, Any] = {}
    if args.from_file is not None:
        updates = read_json_file(args.from_file)
    elif args.rotate_aes_key is None and not args.finish_rotation:
        updates = prompt_values(store.read(), ask_public, ask_secret)
    new_key = args.rotate_aes_key
    if new_key is PROMPT:
        new_key = ask_secret("new encoding_aes_key: ").strip()
    written = update_secret(store, updates, new_aes_key=new_key, finish=args.finish_rotation)
    print(describe(written))
    return 0


def run_redrive(args: argparse.Namespace, target: StackTarget) -> int:
    report = redrive_queue(target, args.queue, args.max_messages, args.wait_seconds)
    print(json.dumps({"queue": args.queue, **report.as_dict()}))
    return 1 if report.failed else 0


def run_menu(args: argparse.Namespace) -> int:
    menu = load_menu(args.file, known_click_keys())
    if args.check_only:
        logger.info("menu file %s is valid: %d buttons in all", args.file, len(menu.all_buttons()))
        return 0
    result = publish_menu(build_target(args), menu, args.wechat_api_base)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def run_resend(args: argparse.Namespace, target: StackTarget) -> int:
    result = resend_notice(target, args.notice_id)
    print(json.dumps({"notice_id": result.notice_id, "ticket_id": result.ticket_id, "published": True}))
    return 0


def run_export(args: argparse.Namespace, target: StackTarget) -> int:
    rows = export_tickets(target, args.first_day, args.last_day, args.include_openid)
    text = render(rows, args.format, args.include_openid)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        logger.info("export written to %s", args.output)
    return 0


def run_knowledge_import(args: argparse.Namespace, target: StackTarget) -> int:
    try:
        result = import_into_stack(target, None if args.starter else args.file)
    except KnowledgeImportError as err:
        # The row errors are the Chinese texts that staff also see through the API.
        print(f"error: nothing imported; {err.describe()}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0


def dispatch(
    args: argparse.Namespace, ask_public: Callable[[str], str], ask_secret: Callable[[str], str]
) -> int:
    if args.command == "menu":
        return run_menu(args)
    target = build_target(args)
    if args.command == "secrets":
        return run_secrets(args, target, ask_public, ask_secret)
    if args.command == "redrive":
        return run_redrive(args, target)
    if args.command == "resend-notice":
        return run_resend(args, target)
    if args.command == "knowledge-import":
        return run_knowledge_import(args, target)
    return run_export(args, target)


def main(
    argv: list[str] | None = None,
    ask_public: Callable[[str], str] = input,
    ask_secret: Callable[[str], str] = getpass.getpass,
) -> int:
    """Run one command; `ask_public` and `ask_secret` read prompted values (getpass hides secrets)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    from intake.wechat_api import WeChatApiError, WeChatProtocolError, WeChatTransportError

    try:
        return dispatch(args, ask_public, ask_secret)
    except (
        StackOutputError,
        SecretValueError,
        MenuFileError,
        NoticeNotResendableError,
        WeChatApiError,
        WeChatTransportError,
        WeChatProtocolError,
        ValueError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as err:
        print(f"error: AWS call failed: {err}", file=sys.stderr)
        return 1
