"""The settings object every component receives. Unknown keys are errors, not silently ignored."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coattail.contracts.trade import SYMBOL_PATTERN
from coattail.settings.connectors import ConnectorEntry
from coattail.settings.modules import validate_params
from coattail.settings.outbound import AlertsOutSettings
from coattail.settings.validators import (
    ApiKey,
    CursorSecret,
    DynamoTableName,
    EndpointUrl,
    TradeFieldName,
)

P = TypeVar("P", bound=BaseModel)
MODULE_ID = re.compile(r"^MOD-\d{3}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconnectSettings(_Section):
    initial_backoff_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(30, gt=0)
    jitter: float = Field(0.25, ge=0, le=1)


class KafkaSettings(_Section):
    bootstrap_servers: str = ""
    topic: str = Field("trades", min_length=1)
    dlq_topic: str = Field("trades-dlq", min_length=1)
    # OnchainEvents have their own topic (and dead letters): read only when an active module needs them.
    onchain_topic: str = Field("onchain", min_length=1)
    onchain_dlq_topic: str = Field("onchain-dlq", min_length=1)
    partitions: int = Field(3, ge=1)


class KinesisSettings(_Section):
    stream_name: str = Field("coattail-trades", min_length=1)
    dlq_stream_name: str = Field("coattail-trades-dlq", min_length=1)
    onchain_stream_name: str = Field("coattail-onchain", min_length=1)
    onchain_dlq_stream_name: str = Field("coattail-onchain-dlq", min_length=1)
    region: str = "us-west-2"
    endpoint_url: EndpointUrl = ""


class StreamSettings(_Section):
    backend: Literal["kafka", "kinesis"] = "kafka"
    kafka: KafkaSettings = KafkaSettings()
    kinesis: KinesisSettings = KinesisSettings()


class ProducerSettings(_Section):
    """Connector pods (``coattail connectors run``): status port, shutdown grace, buffers."""

    status_host: str = "127.0.0.1"
    status_port: int = Field(9102, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(20, gt=0)
    queue_size: int = Field(10_000, ge=1)
    dedupe_window: int = Field(100_000, ge=1)
    gap_fill_max_trades: int = Field(100_000, ge=1)
    kinesis_max_attempts: int = Field(8, ge=1)


class HotStoreSettings(_Section):
    table: DynamoTableName = "coattail-alerts"
    region: str = "us-west-2"
    endpoint_url: EndpointUrl = ""
    ttl_hours: float = Field(24, gt=0)
    create_if_missing: bool = True
    # How long the pipeline waits out a store outage (writes, table check at start) before failing.
    retry_seconds: float = Field(120, ge=0)
    # Recent-windows points (the dashboard's charts: every window of the last hour) live this long.
    windows_ttl_hours: float = Field(2, gt=0)


class CatalogSettings(_Section):
    type: Literal["sql", "glue", "rest"] = "sql"
    uri: str = ""
    warehouse: str = ""


class LakeSettings(_Section):
    table_properties: dict[str, str] = Field(default_factory=dict)
    namespace: str = Field("coattail", pattern=r"^[a-z][a-z0-9_]*$")
    catalog: CatalogSettings = CatalogSettings()
    raw_zone: str = ""


class PipelineSettings(_Section):
    checkpoint_location: str = ""
    trigger_interval_seconds: float = Field(30, gt=0)  # the lake path's commit cadence
    alert_trigger_seconds: float = Field(1, gt=0)  # per-trade alerts (stateless detectors), no Iceberg
    window_trigger_seconds: float = Field(2, gt=0)  # stateful detectors: a closed window's delay
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    max_offsets_per_trigger: int = Field(200_000, gt=0)
    lake_max_offsets_per_trigger: int = Field(1_000_000, gt=0)  # per lake batch: / its trigger = its ceiling
    lake_min_offsets_per_trigger: int = Field(0, ge=0)  # 0: off; else fewer, bigger lake commits
    lake_max_trigger_delay_seconds: float = Field(60, gt=0)  # ... but never wait longer than this
    shuffle_partitions: int = Field(4, ge=1)
    fair_scheduler: bool = True  # alert queries' jobs in a weighted pool ahead of the lake path's
    spark_conf: dict[str, str] = Field(default_factory=dict)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9103, ge=0, le=65535)


class QualitySettings(_Section):
    required_fields: list[TradeFieldName] = Field(
        default_factory=lambda: ["event_id", "symbol", "price", "quantity", "timestamp"]
    )
    price_min_exclusive: float = 0
    quantity_min_exclusive: float = 0
    restrict_to_configured_symbols: bool = True
    dedup_window_minutes: int = Field(60, gt=0)
    late_after_seconds: int = Field(300, gt=0)
    consistency_tolerance_pct: float = Field(0.1, ge=0)
    score_alarm_pct: float = Field(95, ge=0, le=100)
    score_alarm_minutes: int = Field(5, gt=0)
    # Timestamp window (seconds after the record's arrival; a floor): outside it a trade is dead-lettered,
    # so it can never move a detector's event-time watermark. The bounds keep every accepted time inside
    # what pandas/Arrow (datetime64[ns]: 1677..2262) and Python datetimes convert.
    max_future_seconds: int = Field(300, gt=0, le=366 * 86_400)
    min_timestamp: datetime = datetime(2009, 1, 3, tzinfo=UTC)

    @field_validator("min_timestamp")
    @classmethod
    def _sane_floor(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2009-01-03T00:00:00Z")
        value = value.astimezone(UTC)
        if not datetime(1970, 1, 1, tzinfo=UTC) <= value <= datetime(2200, 1, 1, tzinfo=UTC):
            raise ValueError("must lie between 1970-01-01 and 2200-01-01")
        return value


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[ApiKey] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    default_limit: int = Field(50, ge=1)
    max_limit: int = Field(200, ge=1)
    api_keys_file: str = ""
    cursor_secret: CursorSecret = ""
    stream_poll_seconds: float = Field(1.0, gt=0)
    stream_lookback_seconds: float = Field(300, gt=0)
    stream_ping_seconds: float = Field(15, gt=0)
    # Slow or idle clients (slow-loris): a request's head and body must arrive within
    # request_timeout_seconds of its first byte (or of the connection); an idle keep-alive connection
    # is closed after keep_alive_seconds; a request head larger than max_request_head_bytes gets 431.
    request_timeout_seconds: float = Field(10, gt=0, le=300)
    keep_alive_seconds: int = Field(5, ge=1, le=300)
    max_request_head_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    # On SIGTERM, open responses (SSE streams never end) get this long before they are cut.
    shutdown_grace_seconds: float = Field(10, gt=0, le=300)


class BatchSparkApplication(_Section):
    """The Spark steps (reprocess, upkeep) as SparkApplications, waited on like Step Functions' ``.sync``."""

    namespace: str = "default"
    image: str = ""
    service_account: str = ""
    main_application_file: str = "local:///opt/coattail/jobs/batch_spark_main.py"
    spark_version: str = "4.1.1"
    env_config_map: str = ""
    env_secret: str = ""
    run_as_user: int = Field(185, ge=1)
    timeout_seconds: float = Field(3600, gt=0)
    poll_seconds: float = Field(15, gt=0)


class BatchSettings(_Section):
    schedule: str = "0 2 * * *"
    quality_pass_pct: float = Field(99, ge=0, le=100)
    snapshot_retention_days: int = Field(7, ge=1)
    notify: Literal["none", "webhook", "sns"] = "none"
    webhook_url: str = ""
    sns_topic_arn: str = ""
    backfill_exchange: Literal["binance"] = "binance"
    request_weight_budget: int = Field(3000, ge=10, le=6000)
    freshness_minutes: int = Field(60, gt=0)
    max_dead_letter_pct: float = Field(1, ge=0, le=100)
    step_attempts: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(30, ge=0)
    pushgateway_url: str = ""
    metrics_textfile: str = ""
    reprocess_runner: Literal["local", "spark-operator"] = "local"
    spark_application: BatchSparkApplication = BatchSparkApplication()


class ModuleSpec(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    alert_types: list[str] = Field(min_length=1)
    output_table: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, description="modules whose output this one reads")
    # Python module that defines the detector (importing it registers the class); empty: not built yet.
    code: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


class SparkRole(_Section):
    cores: int = Field(1, ge=1)
    memory: str = Field("2g", pattern=r"^\d+[mg]$")


class SparkExecutor(SparkRole):
    instances: int = Field(1, ge=1)


class SparkSizing(_Section):
    driver: SparkRole = SparkRole()
    executor: SparkExecutor = SparkExecutor()


class Settings(_Section):
    profile: Literal["embedded", "k8s-local", "eks"] = "embedded"
    tier: str = Field("small", pattern=r"^[a-z][a-z0-9_-]*$")
    instruments: dict[str, list[str]]
    equivalences: dict[str, list[str]] = Field(default_factory=dict)
    connectors: dict[str, ConnectorEntry]  # each exchange's own model, by `type` (settings/connectors.py)
    reconnect: ReconnectSettings = ReconnectSettings()
    stream: StreamSettings = StreamSettings()
    producer: ProducerSettings = ProducerSettings()
    hot_store: HotStoreSettings = HotStoreSettings()
    alerts_out: AlertsOutSettings = AlertsOutSettings()
    lake: LakeSettings = LakeSettings()
    pipeline: PipelineSettings = PipelineSettings()
    quality: QualitySettings = QualitySettings()
    api: ApiSettings = ApiSettings()
    batch: BatchSettings = BatchSettings()
    modules: dict[str, ModuleSpec]
    # Resolved from the tier file(s):
    active_modules: list[str] = Field(default_factory=list)
    active_connectors: list[str] = Field(default_factory=list)
    spark: SparkSizing = SparkSizing()
    # Where things live (not from YAML):
    config_dir: Path
    state_dir: Path

    @field_validator("instruments")
    @classmethod
    def _symbols_are_normalised(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for exchange, symbols in value.items():
            for symbol in symbols:
                if not re.fullmatch(SYMBOL_PATTERN, symbol):  # fullmatch: "$" alone allows a trailing newline
                    raise ValueError(f"{exchange} symbol {symbol!r} is not BASE-QUOTE upper case")
        return value

    @field_validator("modules")
    @classmethod
    def _module_ids_and_params(cls, value: dict[str, ModuleSpec]) -> dict[str, ModuleSpec]:
        for module_id, spec in value.items():
            if not MODULE_ID.match(module_id):
                raise ValueError(f"module id {module_id!r} is not of the form MOD-123")
            validate_params(module_id, spec.params, spec.code)
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> Settings:
        for module_id in self.active_modules:
            if module_id not in self.modules:
                raise ValueError(f"tier {self.tier!r} activates unknown module {module_id}")
        for module_id, spec in self.modules.items():
            for dep in spec.depends_on:
                if dep not in self.modules:
                    raise ValueError(f"module {module_id} depends on unknown module {dep}")
        for module_id in self.active_modules:
            spec = self.modules[module_id]
            missing = [d for d in spec.depends_on if d not in self.active_modules]
            if missing:
                names = ", ".join(f"{d} ({self.modules[d].name})" for d in missing)
                raise ValueError(
                    f"tier {self.tier!r} activates {module_id} ({spec.name}) without {names}, which it "
                    "depends on; add it to the tier's modules"
                )
        for name in self.active_connectors:
            if name not in self.connectors:
                raise ValueError(f"tier {self.tier!r} activates unknown connector {name!r}")
        for group, members in self.equivalences.items():
            if len(members) < 2:
                raise ValueError(f"equivalence {group!r} needs at least two instruments")
            for member in members:
                exchange, _, symbol = member.partition(":")
                if symbol not in self.instruments.get(exchange, []):
                    raise ValueError(
                        f"equivalence {group!r} names {member!r}, which is not a configured instrument"
                    )
        if self.api.default_limit > self.api.max_limit:
            raise ValueError("api.default_limit must not exceed api.max_limit")
        return self

    # -- typed accessors -------------------------------------------------------------------------
    def module_params(self, module_id: str, model: type[P]) -> P:
        """Typed params of one module (``model`` is e.g. VolumeAnomalyParams)."""
        return model.model_validate(self.modules[module_id].params)

    def alert_types(self) -> list[str]:
        """Alert types registered by the active tier's modules, in module order."""
        seen: list[str] = []
        for module_id in self.active_modules:
            seen += [t for t in self.modules[module_id].alert_types if t not in seen]
        return seen

    def all_symbols(self) -> list[str]:
        return sorted({s for symbols in self.instruments.values() for s in symbols})

    def state_path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)
