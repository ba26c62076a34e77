"""The Kafka section of the settings (``STREAMREC_KAFKA__*``): the broker, topics,
micro-batches, fetch and produce bounds, and the connection's security."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator


class TopicNames(BaseModel):
    items: str = Field(default="items", description="Catalog records in.")
    events: str = Field(default="events", description="User events in.")
    recommendations: str = Field(default="recommendations", description="Recommendations out.")
    dead_letters: str = Field(default="dead-letters", description="Rejected records out.")


class KafkaConfig(BaseModel):
    broker: str = Field(
        default="kafka://127.0.0.1:9092",
        description="Bootstrap servers, kafka://host:port[;kafka://host2:port].",
    )
    app_id: str = Field(
        default="streamrec", description="Faust app id: consumer group and internal topic prefix."
    )
    partitions: int = Field(default=4, ge=1, description="Partitions of every topic created.")
    replication: int = Field(default=1, ge=1, description="Replication factor of created topics.")
    topics: TopicNames = Field(default_factory=TopicNames)
    session_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Consumer-group session timeout, seconds (Tansu joins in about half).",
    )
    # Only a backlog fills a batch (natural batching, below), so this bounds how much of it
    # one serving step takes. Chosen on training-off firehoses of 20,000 ML-100K events,
    # alternated (BENCHMARKS.md, session 33): 1,024 against 256 gave 3,200-3,631 events/s
    # against 2,677-3,271 in time order and 2,869-3,008 against 1,903-2,342 with users
    # interleaved (worker CPU per event -30 to -40 % there); 2,048 was no better than 1,024.
    batch_size: int = Field(
        default=1024,
        ge=1,
        description="Events (or items) per micro-batch to Ray, at most: the most a backlog "
        "hands to one serving step.",
    )
    serve_in_place: bool = Field(
        default=True,
        description="Serve an event keyed by its user_id, on the partition the producer's "
        "partitioner gives that key, in the worker that read it (no by-user hop); off: "
        "every event is re-keyed through the by-user topic.",
    )
    # A micro-batch is taken as soon as the agent is ready and an event is there
    # (`streams.batching`); this is how long it then waits for more. Events that come
    # while the agent serves are buffered for the next batch regardless, so under load
    # batches grow without it, and a long one only delays the first event of a batch
    # taken when the stack was idle (session 22: 0.01 -> 0.002 s with `take_ready`).
    batch_within: float = Field(
        default=0.002,
        gt=0,
        description="Seconds a micro-batch waits for more events after its first one.",
    )
    batches_in_flight: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Micro-batches an agent serves at once: the next batch's recommend call "
        "goes out while the last one's recommendations are produced (1: one at a time). "
        "Offsets are committed only once a batch's outputs are produced.",
    )
    commit_interval: float = Field(default=1.0, gt=0, description="Offset commit interval, s.")
    linger_ms: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Producer linger, ms: records produced within it share one request "
        "(fewer, larger writes; at most this much added latency per hop).",
    )
    max_request_size: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request the worker's producer sends, bytes (aiokafka's "
        "max_request_size; keep it at most the brokers' message.max.bytes): a record over "
        "it is refused for good, and the worker stops rather than commit past it.",
    )
    # aiokafka keeps one batch per partition open and one request per broker in flight
    # (Java's producer pipelines five), so a batch's bytes are what one round trip can
    # move: 1,024 recommendations (~630 bytes each) took 54.5 ms to confirm at 16 KiB,
    # 32.6 ms at 64 KiB, 31.2 at 256 KiB (BENCHMARKS.md, session 36).
    producer_batch_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="Producer batch per partition, bytes (aiokafka's max_batch_size; "
        "at most max_request_size): records queued to one partition share a batch up to "
        "this size, and one request per broker carries a batch of each partition.",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=30000,
        description="Consumer fetch long-poll bound, ms, when no records came for this "
        "long (Faust's 1500 stalls Tansu hops).",
    )
    # Chosen on the 1,000/s paced phase after a 20,000-event firehose (BENCHMARKS.md,
    # session 18), two runs each: 5 ms p50 49/48 ms, 10 ms 33/32, 100 ms (no adapting)
    # 62/56; 10 ms cost ~0.45 ms more CPU per event (all processes) than 100 at that rate.
    fetch_busy_wait_ms: int = Field(
        default=10,
        ge=1,
        le=30000,
        description="Consumer fetch long-poll bound, ms, while records flow (some fetch "
        "returned records within fetch_max_wait_ms): the embedded broker delivers a record "
        "within about half the bound.",
    )

    security_protocol: str = Field(
        default="PLAINTEXT",
        pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="How every Kafka client (workers, produce, consume, eval, bench, topic "
        "creation) talks to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: str = Field(
        default="PLAIN",
        pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
        description="SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (never logged nor shown in reprs)."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates, with SSL/"
        "SASL_SSL (default: the system's trusted CAs).",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM), where the brokers ask for one."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="Private key (PEM) of STREAMREC_KAFKA__SSL_CERTFILE."
    )
    ssl_check_hostname: bool = Field(
        default=True, description="Check that a broker's certificate names the host dialled."
    )

    @model_validator(mode="after")
    def _security_complete(self) -> KafkaConfig:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self

    @field_validator("broker")
    @classmethod
    def _with_scheme(cls, value: str) -> str:
        parts = [p.strip() for p in value.replace(",", ";").split(";") if p.strip()]
        if not parts:
            raise ValueError("broker must name at least one host:port")
        return ";".join(p if "://" in p else f"kafka://{p}" for p in parts)

    def bootstrap_servers(self) -> list[str]:
        """host:port list for plain Kafka clients (kafka-python, aiokafka)."""
        return [p.split("://", 1)[1] for p in self.broker.split(";")]
