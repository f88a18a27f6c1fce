"""Render BENCHMARKS.md from measured figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.cold_start import ImportSample
from bench.package_size import PackageSize
from bench.pipeline import PipelineFigure
from bench.warm_webhook import WarmFigure

COLD_START_TARGET_RATIO = 1.5
WARM_TARGET_RATIO = 2.0
KNOWLEDGE_PRECISION_GOAL = 0.95
WEBHOOK_FUNCTIONS = ("WebhookVerifyFunction", "MessageIngestFunction")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1_000_000:.0f} µs"


def _verdict(ratio: float, target: float) -> str:
    return (
        f"met (≤ {target}×)" if ratio <= target else f"missed by {ratio - target:.2f}× (target ≤ {target}×)"
    )


def _cold_table(baseline: ImportSample, cold: Sequence[ImportSample]) -> list[str]:
    lines = [
        "| module | median | spread (min–max) | ratio to baseline | target |",
        "| --- | --- | --- | --- | --- |",
        f"| {baseline.name} | {_ms(baseline.median)} | {_ms(baseline.spread[0])}–{_ms(baseline.spread[1])} | 1.00× | |",
    ]
    for sample in cold:
        ratio = sample.median / baseline.median
        target = _verdict(ratio, COLD_START_TARGET_RATIO) if sample.name in WEBHOOK_FUNCTIONS else ""
        lines.append(
            f"| {sample.name} | {_ms(sample.median)} | {_ms(sample.spread[0])}–{_ms(sample.spread[1])} "
            f"| {ratio:.2f}× | {target} |"
        )
    return lines


def _bytecode_table(cold: Sequence[ImportSample], without_bytecode: Sequence[ImportSample]) -> list[str]:
    with_bytecode = {sample.name: sample for sample in cold}
    lines = [
        "| module | with checked-hash .pyc (as built) | compiled from source | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for sample in without_bytecode:
        cached = with_bytecode[sample.name]
        lines.append(
            f"| {sample.name} | {_ms(cached.median)} | {_ms(sample.median)} | {sample.median / cached.median:.2f}× |"
        )
    return lines


def _warm_table(warm: Sequence[WarmFigure]) -> list[str]:
    lines = [
        "| mode | handler median | handler p95 | floor median | ratio to floor | target "
        "| floor + one SendMessage | ratio to floor + SendMessage |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for figure in warm:
        ratio = figure.handler_median / figure.floor_median
        with_call = figure.floor_with_sqs_call
        lines.append(
            f"| {figure.mode} | {_us(figure.handler_median)} | {_us(figure.handler_p95)} "
            f"| {_us(figure.floor_median)} | {ratio:.2f}× | {_verdict(ratio, WARM_TARGET_RATIO)} "
            f"| {_us(with_call)} | {figure.handler_median / with_call:.2f}× |"
        )
    return lines


def _knowledge_section(figures: dict[str, Any] | None) -> list[str]:
    lines = [
        "## Knowledge-base answers",
        "",
        "`bench/knowledge_quality.py` runs the matcher (`intake.knowledge_matching.best_match`) over "
        "the labelled citizen messages in tests/fixtures/knowledge_labelled_questions.json against the "
        "starter entries, at the threshold template.yaml deploys. The matcher's word lists were tuned on "
        "that set, so a second, held-out set (tests/fixtures/knowledge_heldout_questions.json) gives "
        "figures for messages it has not seen. Precision is the share of automatic "
        "answers that name the labelled entry (a wrong answer is worse than none); recall is the share of "
        "messages labelled with an entry that are answered at once. Goal: precision at least "
        f"{KNOWLEDGE_PRECISION_GOAL:.0%}; `tests/unit/test_knowledge_quality.py` fails below it.",
        "",
    ]
    if figures is None:
        return [*lines, "Not measured in this run."]
    precision = figures["precision"]
    verdict = "met" if precision >= KNOWLEDGE_PRECISION_GOAL else "missed"
    lines += [
        "| figure | value |",
        "| --- | --- |",
        f"| threshold | {figures['threshold']} |",
        f"| messages (labelled with an entry / near-misses and others) | {figures['messages']} "
        f"({figures['labelled_with_entry']} / {figures['messages'] - figures['labelled_with_entry']}) |",
        f"| answered correctly / wrongly / not answered / rightly not answered | "
        f"{figures['true_positive']} / {figures['false_positive']} / {figures['false_negative']} / "
        f"{figures['true_negative']} |",
        f"| precision | {precision:.1%} ({verdict}, goal ≥ {KNOWLEDGE_PRECISION_GOAL:.0%}) |",
        f"| recall | {figures['recall']:.1%} |",
        f"| held-out messages (never run through the matcher while it was tuned) | {figures['heldout_messages']} |",
        f"| held-out precision | {figures['heldout_precision']:.1%} "
        f"({'met' if figures['heldout_precision'] >= KNOWLEDGE_PRECISION_GOAL else 'missed'}) |",
        f"| held-out recall | {figures['heldout_recall']:.1%} |",
        f"| import of the matcher module (the segmenter loads on the first match) | {figures['import_ms']:.0f} ms |",
        f"| first match (loads the segmenter's dictionary) | {figures['first_call_ms']:.0f} ms |",
        f"| median match afterwards | {figures['median_match_ms'] * 1000:.0f} µs |",
    ]
    wrong = (figures.get("wrong_answers") or []) + (figures.get("heldout_wrong_answers") or [])
    if wrong:
        lines += ["", "Wrong automatic answers in this run:", ""]
        lines += [
            f"- 「{item['text']}」 answered with `{item['answered']}`, labelled `{item['expected'] or 'none'}`"
            for item in wrong
        ]
    return lines


def _size_table(sizes: Sequence[PackageSize] | None) -> list[str]:
    if sizes is None:
        return ["Not measured in this run (`--skip-build`)."]
    lines = ["| function | unzipped with layers | zipped with layers |", "| --- | --- | --- |"]
    for size in sizes:
        lines.append(
            f"| {size.function} | {size.unzipped_bytes / 1_048_576:.1f} MiB | {size.zipped_bytes / 1_048_576:.1f} MiB |"
        )
    return lines


def _pipeline_table(figure: PipelineFigure | None) -> list[str]:
    if figure is None:
        return ["Not measured in this run (`--pipeline-pushes 0`)."]
    return [
        f"{figure.pushes} text pushes from {figure.citizens} citizens sending at the same time.",
        "",
        "| figure | median | p95 |",
        "| --- | --- | --- |",
        f"| webhook response (POST to HTTP 200) | {_ms(figure.webhook_median)} | {_ms(figure.webhook_p95)} |",
        f"| push → message item in DynamoDB | {_ms(figure.item_median)} | {_ms(figure.item_p95)} |",
        f"| citizen's first push → acknowledgement accepted by WeChat | {_ms(figure.ack_median)} "
        f"| {_ms(figure.ack_p95)} |",
        f"| floor: one SendMessage, ReceiveMessage, DeleteMessage, PutItem chain | "
        f"{_ms(figure.floor_chain_median)} | {_ms(figure.floor_chain_p95)} |",
        "",
        "| throughput | pushes per second |",
        "| --- | --- |",
        f"| pipeline (first POST to last message item) | {figure.throughput:.1f} |",
        f"| floor (the same number of chains, as many threads as citizens) | {figure.floor_throughput:.1f} |",
        "",
        f"Poll resolution (median BatchGetItem round): {_ms(figure.poll_resolution)}.",
    ]


def render(
    machine: str,
    command: str,
    date: str,
    baseline: ImportSample,
    cold: Sequence[ImportSample],
    without_bytecode: Sequence[ImportSample],
    warm: Sequence[WarmFigure],
    sizes: Sequence[PackageSize] | None,
    pipeline: PipelineFigure | None = None,
    knowledge: dict[str, Any] | None = None,
) -> str:
    sections = [
        "# Benchmarks",
        "",
        "Written by `make bench`; every figure below comes from the run described here. Ratios compare "
        "against a baseline measured in the same run, because the machines are shared and noisy.",
        "",
        f"- Machine: {machine}",
        f"- Command: `{command}`",
        f"- Date: {date}",
        "",
        "## Cold start: handler module import",
        "",
        "Import time of each function's handler module in a fresh interpreter (interpreter start-up "
        "excluded), with the function's environment from template.yaml and its code and layers on "
        "`sys.path` as Lambda unpacks them: the layers built by their Makefiles for this machine's "
        "architecture, every file stamped 1980-01-01, nothing writable. Baseline: a module that imports boto3 and creates one SQS client. Target for the two "
        f"webhook functions: at most {COLD_START_TARGET_RATIO}× the baseline.",
        "",
        *_cold_table(baseline, cold),
        "",
        "## Bytecode",
        "",
        "The same imports from the same tree with every `__pycache__` folder removed. SAM zips files "
        "with 1980 timestamps, so ordinary timestamp-checked `.pyc` files never match their sources in "
        "Lambda, and /opt and /var/task are read-only: without precompiled bytecode every cold start "
        "compiles every module from source. The layers' Makefiles therefore compile every module to a "
        "checked-hash `.pyc` (valid whatever the timestamps), which the column on the left measures. "
        "The handler modules themselves (one small file per function) are not precompiled.",
        "",
        *_bytecode_table(cold, without_bytecode),
        "",
        "## Warm webhook",
        "",
        "Handler time per push through `lambda_handler` with an API Gateway event, the SQS call answered "
        "by botocore's Stubber and the secret cached, against the floor: signature checks, decryption "
        f"and parsing alone with the same libraries. Target: at most {WARM_TARGET_RATIO}× the floor.",
        "",
        *_warm_table(warm),
        "",
        "The second reference adds one stubbed SendMessage through a boto3 client (a 700-byte body), "
        "which any handler that queues the push pays. What remains above it is Powertools: the JSON "
        "log line per push (about 100 µs here), the EMF metrics document flushed per invocation and the "
        "Lambda context injection, plus building and serialising the record. The target of 2× the floor "
        "is below the cost of the SendMessage call alone in safe and plain mode, so it cannot be met "
        "while the webhook queues through boto3; the figures state by how much it is missed.",
        "",
        "## Package size",
        "",
        "Each function with its layers as `sam build` (no Docker, arm64 wheels) produces them.",
        "",
        *_size_table(sizes),
        "",
        "## Pipeline on the local stack",
        "",
        "`bench/pipeline.py` runs template.yaml on the local stack (moto's server, the WeChat emulator "
        "and every function in worker processes on this machine) and sends a burst of signed, encrypted "
        "text pushes: one thread per citizen posts that citizen's messages in order, citizens in "
        "parallel, as WeChat delivers them. Push → message item is the time from the POST to the first "
        "poll that finds the push's marker, which ticket-write writes in the same transaction as the "
        "message item. First push → acknowledgement is per citizen: from the first POST to the "
        "emulator's acceptance of the customer-service message that acknowledges the new draft (later "
        "messages join the draft and are not acknowledged again). The floor is moto alone: the same "
        "number of SQS send, receive, delete and DynamoDB put chains on the same server.",
        "",
        "These figures describe this machine, not AWS: every function shares its cores with moto, "
        "ticket-write runs two batches at a time here, and the local API gateway runs four webhook "
        "workers, so a burst queues where Lambda would add instances. Read them as the cost of our code "
        "per push relative to moto's floor, and as a check that a burst loses or duplicates nothing.",
        "",
        *_pipeline_table(pipeline),
        "",
        *_knowledge_section(knowledge),
        "",
        *CAPACITY_ON_PAPER,
    ]
    return "\n".join(sections)


# Static text: how the deployed template absorbs a spike, and what 10,000 tickets cost. The AWS limits
# were read from the AWS documentation (Lambda scaling behaviour, SQS message quotas, DynamoDB
# on-demand capacity mode) when this section was written; prices are stated as assumptions.
CAPACITY_ON_PAPER = [
    "## Capacity on paper",
    "",
    "Not measured: what the template's settings and AWS's documented limits allow for a spike of "
    "1,000 pushes per second (a typhoon night, say). Check the quotas of the account and Region "
    "(samconfig.toml deploys to ap-east-1) before relying on them.",
    "",
    "- **API Gateway.** The stage throttles at 1,000 requests per second with a burst of 2,000 "
    "(`ThrottlingRateLimit` and `ThrottlingBurstLimit` in template.yaml). WeChat retries a push "
    "that gets no answer within 5 s (three attempts), so a short overload delays pushes rather than "
    "losing them; a longer one loses the pushes whose third attempt is also refused. The account-level "
    "API Gateway quota of the Region is a second, higher ceiling.",
    "- **Webhook functions.** message-ingest only verifies, decrypts, parses and sends one SQS "
    "message (see the warm-webhook figures above). AWS documents a scaling rate of 1,000 new "
    "execution environments every 10 seconds per function, and a default account concurrency of "
    "1,000 shared by every function. At an estimated 50 ms per warm push, 1,000 pushes per second "
    "need about 50 concurrent instances; a spike that arrives cold pays one cold start per new "
    "instance (see the cold-start figures).",
    "- **Inbound FIFO queue.** It is in high-throughput mode (`DeduplicationScope: messageGroup`, "
    "`FifoThroughputLimit: perMessageGroupId`). AWS documents 300 transactions per second per API "
    "action per partition (3,000 messages with batching) and, in high-throughput mode, a per-queue "
    "limit that depends on the Region (up to 70,000 non-batched transactions per second in the "
    "largest Regions, less elsewhere; the SQS quota page lists them). The message group is the "
    "citizen's OpenID, and a citizen sends at most a few messages per second, so the per-group limit "
    "is never the bound.",
    "- **ticket-write.** For a FIFO source, AWS documents that Lambda scales to the number of active "
    "message groups, that is, one instance per citizen with queued messages, up to the account's "
    "concurrency. Order within a citizen is kept; citizens proceed in parallel.",
    "- **reply-push.** Capped at 5 concurrent instances (`MaximumConcurrency` on its event source), "
    "each sending at most 50 WeChat calls per second (`WECHAT_SEND_RATE_PER_SECOND`), so at most 250 "
    "sends per second leave for WeChat; the rest wait on the outbound queue. WeChat's own quotas "
    "(45009 daily, 45011 per minute) put notices back on the queue with a delay.",
    "- **DynamoDB.** On-demand. AWS documents that a new on-demand table sustains 4,000 writes and "
    "12,000 reads per second, that a table takes up to twice its previous peak at once (more "
    "throttles if it comes within 30 minutes), and that each partition serves at most 1,000 write "
    "units per second. Each push writes about 11 write units (estimate below), so 1,000 pushes per "
    "second need about 11,000 write units per second: above a new table's 4,000, so a table that "
    "has never seen such a peak throttles at first (the SDK retries; SQS redelivers what still "
    "fails). Keys spread by ticket and citizen, so no single partition is the bound. Switching the "
    "table to provisioned mode for a day to pre-warm it is the documented remedy before a known event.",
    "",
    "### What 10,000 tickets cost (estimate)",
    "",
    "Assumed unit prices: AWS list prices for us-east-1 (US dollars) as we understood them in 2025, "
    "not checked against the AWS price list in this run. ap-east-1, where samconfig.toml deploys, "
    "is dearer for most of these.",
    "",
    "| service | assumed unit price |",
    "| --- | --- |",
    "| API Gateway REST | $3.50 per million requests |",
    "| Lambda (arm64) | $0.20 per million requests, $0.0000133334 per GB-second |",
    "| SQS FIFO | $0.50 per million requests (64 KB each) |",
    "| EventBridge custom events | $1.00 per million |",
    "| DynamoDB on-demand | $0.625 per million write units, $0.125 per million read units |",
    "| S3 Standard | $0.005 per 1,000 PUT, $0.0004 per 1,000 GET, $0.023 per GB-month |",
    "| KMS | $1 per key-month, $0.03 per 10,000 requests |",
    "",
    "A ticket is taken as 3 citizen pushes (two texts, one photo) plus a rating, 5 staff API calls "
    "(read, accept, dispatch, reply, close) and 6 notices (acknowledgement, accepted, dispatched, "
    "answer, closed, rating invitation). Requests per ticket, counted from the handlers' code "
    "paths (rounded; batching by the event sources only lowers them):",
    "",
    "| service | per ticket | 10,000 tickets | cost |",
    "| --- | --- | --- | --- |",
    "| API Gateway | 4 pushes + 5 staff calls = 9 | 90,000 | $0.32 |",
    "| Lambda requests | 4 ingest + 4 ticket-write + 1 media-store + 6 reply-push + 5 staff-api = 20 "
    "| 200,000 | $0.04 |",
    "| Lambda compute (estimated durations) | ≈ 3.8 GB-s, most of it media-store | 38,000 GB-s | $0.51 |",
    "| SQS (send, receive, delete) | 11 messages × 3 = 33 | 330,000 | $0.17 |",
    "| EventBridge | ≈ 20 events (TicketChanged and notices) | 200,000 | $0.20 |",
    "| DynamoDB writes | ≈ 11 per push (idempotency record, the transaction of marker, message, "
    "ticket and profile) + ≈ 9 per notice (ledger, quota, history, idempotency) + ≈ 4 per staff "
    "action = ≈ 120 | 1.2 million | $0.75 |",
    "| DynamoDB reads | ≈ 40 | 400,000 | $0.05 |",
    "| S3 | 2 PUT (original, cleaned copy) + 2 GET | 20,000 + 20,000 | $0.11 |",
    "| KMS | ≈ 10 | 100,000 | $0.30 |",
    "| **total** | | | **≈ $2.50** |",
    "",
    "The monthly fixed costs outweigh that: the NAT gateway of `EnableFixedEgressIp=true` (about $33 "
    "a month plus data), 25 CloudWatch alarms at $0.10 each, the KMS key ($1), two Secrets Manager "
    "secrets ($0.40 each), the scheduled functions (draft-submit every minute, token-refresh every "
    "5 minutes: about 52,000 invocations a month), the event sources' empty long polls of three "
    "queues, and log ingestion and storage (set by `LogRetentionDays`).",
    "",
]
