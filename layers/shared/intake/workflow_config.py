"""Handling rules of the 12345 workflow as data: deadlines, categories, departments, return reasons."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIG_FILE = Path(__file__).with_name("workflow_config.json")

# Appeal types (诉求类型) of the 12345 process; their Chinese labels are `[appeal_type]` in texts.zh-CN.toml.
APPEAL_TYPES = ("consultation", "help", "complaint", "report", "suggestion")


class CodedName(BaseModel):
    """A code stored on tickets and the Chinese name shown to staff and citizens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1, max_length=64)


class DeadlineWatchConfig(BaseModel):
    """Timing of the deadline watch's reminder and escalation (see "Deadline watch" in docs/workflow.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The reminder is due from 17:30 of the Nth working day before the deadline's day.
    reminder_lead_working_days: int = Field(default=1, ge=1, le=30)
    # Escalation (督办) is due when the ticket is still open N working days after its deadline.
    escalation_grace_working_days: int = Field(default=5, ge=1, le=60)


class WorkflowConfig(BaseModel):
    """The document in workflow_config.json."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    deadline_working_days: dict[str, int]
    urgent_working_days: int = Field(ge=0, le=30)
    max_extension_working_days: int = Field(ge=1, le=60)
    categories: tuple[CodedName, ...]
    departments: tuple[CodedName, ...]
    return_reasons: tuple[CodedName, ...]
    deadline_watch: DeadlineWatchConfig = DeadlineWatchConfig()
    # Hours after an answer from the knowledge base in which the citizen can ask for a person; then
    # draft-submit's sweep closes the ticket.
    auto_answer_close_hours: int = Field(default=24, ge=1, le=720)

    @model_validator(mode="after")
    def _check(self) -> WorkflowConfig:
        missing = sorted(set(APPEAL_TYPES) - set(self.deadline_working_days))
        if missing:
            raise ValueError(f"deadline_working_days lacks appeal types {missing}")
        unknown = sorted(set(self.deadline_working_days) - set(APPEAL_TYPES))
        if unknown:
            raise ValueError(f"deadline_working_days names unknown appeal types {unknown}")
        if any(days < 0 for days in self.deadline_working_days.values()):
            raise ValueError("deadline_working_days must be 0 or more")
        for field_name in ("categories", "departments", "return_reasons"):
            codes = [entry.code for entry in getattr(self, field_name)]
            if len(codes) != len(set(codes)):
                raise ValueError(f"{field_name} has duplicate codes")
        return self

    def department_name(self, code: str) -> str | None:
        return next((entry.name for entry in self.departments if entry.code == code), None)

    def category_name(self, code: str) -> str | None:
        return next((entry.name for entry in self.categories if entry.code == code), None)

    def return_reason_name(self, code: str) -> str | None:
        return next((entry.name for entry in self.return_reasons if entry.code == code), None)


@cache
def get_workflow_config() -> WorkflowConfig:
    """Return the configuration of workflow_config.json, read once per process."""
    with CONFIG_FILE.open(encoding="utf-8") as handle:
        return WorkflowConfig.model_validate(json.load(handle))
