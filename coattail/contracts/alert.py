"""Alert: what every detector emits (DESIGN.md "Contracts", seed §3.2/§3.3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coattail.contracts.ids import alert_id as make_alert_id
from coattail.contracts.trade import EXCHANGE_PATTERN, SYMBOL_PATTERN
from coattail.contracts.types import UtcDatetime

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[Severity, ...] = ("low", "medium", "high", "critical")
HOT_TTL = timedelta(hours=24)


class Alert(BaseModel):
    """One alert.

    ``detected_at`` is derived from the evidence (window end, trade time), not the wall clock, and
    ``alert_id`` is deterministic: a replay rewrites the very same item (PK ``alert_id``, SK
    ``detected_at``) instead of adding a second one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str = Field(min_length=1, max_length=64)
    alert_type: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$", description="open string, e.g. whale_trade")
    module_id: str = Field(pattern=r"^MOD-\d{3}$")
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    exchange: str | None = Field(default=None, pattern=EXCHANGE_PATTERN)
    severity: Severity
    detected_at: UtcDatetime
    message: str = Field(min_length=1, max_length=1000)
    ttl_epoch: int = Field(ge=0, description="DynamoDB TTL: detected_at + 24 h, epoch seconds")
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        module_id: str,
        alert_type: str,
        symbol: str,
        exchange: str | None,
        severity: Severity,
        detected_at: object,
        message: str,
        details: dict[str, Any],
        evidence: tuple[object, ...],
        ttl: timedelta = HOT_TTL,
    ) -> Alert:
        """Alert with an id from the module and ``evidence``, and a TTL that follows detected_at."""
        draft = cls.model_validate(
            {
                "alert_id": make_alert_id(module_id, *evidence),
                "alert_type": alert_type,
                "module_id": module_id,
                "symbol": symbol,
                "exchange": exchange,
                "severity": severity,
                "detected_at": detected_at,
                "message": message,
                "ttl_epoch": 0,
                "details": details,
            }
        )
        return draft.model_copy(update={"ttl_epoch": int((draft.detected_at + ttl).timestamp())})

    @model_validator(mode="after")
    def _details_are_json(self) -> Alert:
        from coattail.contracts.codec import check_json_value

        check_json_value(self.details, "details")
        return self
