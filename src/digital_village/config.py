"""Settings: the only place that reads the environment (prefix ``DV_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PageWitness(BaseModel):
    """A witness the browser verifier trusts: the name readers see and its cosigning key."""

    name: str = Field(min_length=1, max_length=100)
    vkey: str = Field(min_length=1, max_length=300)


class Settings(BaseSettings):
    """Configuration of one Digital Village deployment.

    Every field can be set from an environment variable named ``DV_<FIELD>``, for example
    ``DV_DATABASE_URL`` or ``DV_PUBLIC_BASE_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="DV_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the embedded database, the ledger signing key and exports.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file in data_dir. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Scheme and host printed in QR codes and links (no trailing slash).",
    )
    ledger_origin: str = Field(
        default="digital-village.example/ledger",
        description="The C2SP checkpoint origin line: a schema-less URL naming this log.",
    )
    operator_name: str = Field(
        default="德阳市旌阳区数字乡村",
        description="Who runs this log, as the pages name the signer of its checkpoints.",
    )
    ledger_key_path: Path | None = Field(
        default=None,
        description="Path of the Ed25519 signing key; default: data_dir/ledger.key (mode 0600).",
    )
    ledger_mirror_url: str | None = Field(
        default=None,
        description="The tile prefix of a mirror of this log (dv ledger mirror), e.g. "
        "https://mirror.example.cn/dv/: the pages' verifier takes its proofs from it. It must "
        "answer with Access-Control-Allow-Origin: *.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted; larger bodies get 413.",
    )
    epcis_strict_hash: bool = Field(
        default=False,
        description="Refuse an event whose declared hash-style eventID (ni:///…) differs from "
        "its CBV 2.0 event hash, instead of keeping it as sent and flagging it.",
    )
    epcis_webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long an EPCIS subscription's webhook may take to answer a delivery; "
        "a delivery claimed by a process that stopped is sent again this long + 5 s later.",
    )
    max_json_depth: int = Field(
        default=64, gt=0, description="Deepest JSON nesting accepted in a request body."
    )
    rate_limit_public_per_minute: int = Field(
        default=600,
        gt=0,
        description="Requests a minute one client address may make without a token.",
    )
    rate_limit_token_per_minute: int = Field(
        default=6000, gt=0, description="Requests a minute one bearer token may make."
    )
    rate_limit_failed_auth_per_minute: int = Field(
        default=30, gt=0, description="Failed authentications a minute before a client is refused."
    )
    import_max_features: int = Field(
        default=100_000,
        gt=0,
        description="Features one parcel import may hold (a file or a request); more are refused "
        "whole (413; the CLI exits 2).",
    )
    import_max_vertices: int = Field(
        default=5_000_000,
        gt=0,
        description="Vertices one parcel import may hold in all; more are refused whole (413).",
    )
    parcel_max_vertices: int = Field(
        default=20_000,
        gt=0,
        description="Vertices one parcel may have; a feature with more is rejected, by name.",
    )
    max_quantity: float = Field(
        default=10_000_000,
        gt=0,
        description="Largest quantity one EPCIS quantity element may give, in its kind's base "
        "unit whatever unit is sent: KGM (10,000 t), LTR (10,000 m³) or items (ten million); "
        "more is refused (422).",
    )
    max_days_ahead: int = Field(
        default=366,
        ge=0,
        description="How far in the future a parcel change, split, merge or registration may "
        "start (valid_from); later dates are refused (422), as are dates before 1950.",
    )
    scan_wait_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="How long an item's page waits for its scan to be stored; past it the page "
        "is served with the count as last seen and the scan is stored later.",
    )
    witness_quorum: int = Field(
        default=1,
        ge=0,
        description="How many of the witnesses configured with `dv ledger witnesses add` must "
        "cosign a checkpoint for the log to mark it witnessed (verifiers apply their own policy).",
    )
    witness_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="How long the log waits for a witness's answer."
    )
    page_witnesses: list[PageWitness] = Field(
        default_factory=list,
        description="Witnesses the browser verifier trusts, as JSON: "
        '[{"name": "德阳市农业农村局", "vkey": "<name>+<keyid>+<base64>"}]. Set from the '
        "witnesses' own publications, never from the log's witness table.",
    )
    page_witness_quorum: int = Field(
        default=1,
        ge=1,
        description="How many of page_witnesses must cosign a checkpoint for the browser to "
        "call it witnessed.",
    )
    log_format: Literal["json", "text"] = Field(default="json")
    log_level: str = Field(default="INFO")

    @field_validator("ledger_mirror_url")
    @classmethod
    def _mirror_is_a_web_prefix(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the mirror's URL must start with https:// (or http://)")
        return value if value.endswith("/") else value + "/"

    @property
    def ledger_mirror_origin(self) -> str | None:
        """The mirror's origin (scheme, host, port): what the pages may fetch from."""
        if self.ledger_mirror_url is None:
            return None
        parts = urlsplit(self.ledger_mirror_url)
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'digital-village.db').as_posix()}"

    @property
    def effective_ledger_key_path(self) -> Path:
        """Where the ledger's private signing key lives."""
        return self.ledger_key_path or self.data_dir / "ledger.key"
