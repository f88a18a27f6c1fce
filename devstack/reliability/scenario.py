"""The seeded scenario: which citizen sends which push, how often WeChat delivers it, and how.

Each citizen first follows the account (a `subscribe` event), then sends a mix of content (text,
image, voice, video, location) and commands (提交, 查询). WeChat delivers a push 1 to 4 times; extra
deliveries are either concurrent with the first (WeChat retries while our response is still pending)
or follow it. A fraction of the pushes, the first ones of every citizen, are sent in plain mode; the
rest in safe mode after the stack was switched.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# Share of each push kind after the subscribe event.
KIND_WEIGHTS = {
    "text": 34,
    "image": 14,
    "voice": 10,
    "video": 6,
    "location": 10,
    "submit": 14,
    "query": 12,
}
# Number of deliveries of one push: mostly once, as WeChat does when the webhook responds in time.
REPEAT_WEIGHTS = {1: 55, 2: 25, 3: 12, 4: 8}
CONTENT_KINDS = frozenset({"text", "image", "voice", "video", "location"})
MEDIA_KINDS = frozenset({"image", "voice", "video"})
COMPLAINTS = (
    "南城街道幸福路12号门口的路灯坏了三天，晚上很黑",
    "东城区万达广场附近井盖松动，车辆经过很响",
    "莞城西正路施工噪音到凌晨两点还没停",
    "虎门镇连升路垃圾两天没人清运，气味很大",
    "松山湖大道公交站的雨棚漏水，候车的人都被淋湿",
    "长安镇乌沙社区路边违规停车占用消防通道",
)


@dataclass
class PlannedPush:
    """One push of the scenario and what happened to its deliveries."""

    index: int
    open_id: str
    kind: str
    create_time_offset: int
    msg_id: int | None
    repeats: int
    concurrent: bool
    mode: str
    media_id: str | None = None
    content: str = ""
    deliveries: int = 0
    concurrent_deliveries: int = 0
    accepted: bool = False
    webhook_errors: int = 0

    @property
    def is_content(self) -> bool:
        return self.kind in CONTENT_KINDS


@dataclass
class Scenario:
    seed: int
    citizens: list[str]
    pushes_by_citizen: dict[str, list[PlannedPush]] = field(default_factory=dict)

    @property
    def pushes(self) -> list[PlannedPush]:
        return [push for pushes in self.pushes_by_citizen.values() for push in pushes]


def build_scenario(pushes: int, citizens: int, seed: int, plain_share: float = 0.1) -> Scenario:
    """Return `pushes` pushes spread over `citizens` citizens, the same for the same seed."""
    if citizens < 1 or pushes < 2 * citizens:
        raise ValueError(
            f"need at least 2 pushes per citizen (a subscribe and one more), got {pushes} for {citizens}"
        )
    rng = random.Random(seed)  # noqa: S311 - a seeded test scenario
    open_ids = [f"oRel{seed:06d}x{index:05d}ABCDEFGHIJ"[:28] for index in range(citizens)]
    scenario = Scenario(seed=seed, citizens=open_ids)
    kinds, kind_weights = zip(*KIND_WEIGHTS.items(), strict=True)
    repeats, repeat_weights = zip(*REPEAT_WEIGHTS.items(), strict=True)
    msg_base = seed * 10**9 + 10**15
    index = 0
    for position, open_id in enumerate(open_ids):
        count = pushes // citizens + (1 if position < pushes % citizens else 0)
        plain_count = math.ceil(count * plain_share)
        planned: list[PlannedPush] = []
        for sequence in range(count):
            kind = "subscribe" if sequence == 0 else rng.choices(kinds, kind_weights)[0]
            repeat = rng.choices(repeats, repeat_weights)[0]
            push = PlannedPush(
                index=index,
                open_id=open_id,
                kind=kind,
                create_time_offset=sequence,
                msg_id=None if kind == "subscribe" else msg_base + index,
                repeats=repeat,
                concurrent=repeat > 1 and rng.random() < 0.5,
                mode="plain" if sequence < plain_count else "safe",
            )
            if kind in MEDIA_KINDS:
                push.media_id = f"rel{seed}m{index:07d}"
            if kind == "text":
                push.content = rng.choice(COMPLAINTS)
            planned.append(push)
            index += 1
        scenario.pushes_by_citizen[open_id] = planned
    return scenario
