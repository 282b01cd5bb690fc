"""A SASL_SSL broker with SCRAM users and ACLs: Kafka run locally the way every peer runs it.

`make kafka-secure` runs one on 127.0.0.1:9093, `KAFKA_SECURE=1 make run` runs the system over it
and the tests run one on free ports. Its certificates, its users' generated passwords and what a
client needs (`credentials.env`) live in its workdir, readable by their owner only.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka_local.broker import REPO, BrokerError, LocalBroker, server_properties, write_private

if TYPE_CHECKING:
    from confluent_kafka.admin._acl import AclBinding

    from shared.settings import KafkaSettings

MECHANISM = "SCRAM-SHA-512"
# admin is the broker's own identity and its only super user; the services get their own users.
ADMIN = "admin"
USERS = (ADMIN, "command", "query")
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class OrderAccess:
    """The names the ACLs protect: each service's settings name them the same way."""

    orders_topic: str = "orders"
    dlq_topic: str = "orders.dlq"
    query_group: str = "query-service"
    # The query instances' membership topic; default <orders_topic>.members, as they name it.
    members: str = ""

    @property
    def members_topic(self) -> str:
        return self.members or f"{self.orders_topic}.members"


def access_from_settings() -> OrderAccess:
    """The names the services will use, from the same environment variables they read."""
    from query_service.settings import QuerySettings

    settings = QuerySettings()
    return OrderAccess(
        settings.orders_topic,
        settings.orders_dlq_topic,
        settings.query_consumer_group,
        settings.members_topic,
    )


def acl_bindings(access: OrderAccess) -> list[AclBinding]:
    """The command service may create and write the orders topic; the query service may read it
    with its groups and write its dead letters. Nobody else has any right (no ACL, no access)."""
    # confluent_kafka.admin re-exports these without marking them exported (mypy --strict).
    from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
    from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

    grants = [
        ("command", ResourceType.TOPIC, access.orders_topic, AclOperation.CREATE),
        ("command", ResourceType.TOPIC, access.orders_topic, AclOperation.DESCRIBE),
        ("command", ResourceType.TOPIC, access.orders_topic, AclOperation.WRITE),
        ("query", ResourceType.TOPIC, access.orders_topic, AclOperation.READ),
        ("query", ResourceType.TOPIC, access.orders_topic, AclOperation.DESCRIBE),
        ("query", ResourceType.GROUP, access.query_group, AclOperation.READ),
        # `python -m query_service rebuild` reads the topic under a group of its own.
        ("query", ResourceType.GROUP, f"{access.query_group}-rebuild", AclOperation.READ),
        ("query", ResourceType.TOPIC, access.dlq_topic, AclOperation.CREATE),
        ("query", ResourceType.TOPIC, access.dlq_topic, AclOperation.DESCRIBE),
        ("query", ResourceType.TOPIC, access.dlq_topic, AclOperation.WRITE),
        # The query instances heartbeat into, and read, their membership topic.
        *(
            ("query", ResourceType.TOPIC, access.members_topic, operation)
            for operation in (
                AclOperation.CREATE,
                AclOperation.DESCRIBE,
                AclOperation.READ,
                AclOperation.WRITE,
            )
        ),
    ]
    return [
        AclBinding(
            resource,
            name,
            ResourcePatternType.LITERAL,
            f"User:{user}",
            "*",
            operation,
            AclPermissionType.ALLOW,
        )
        for user, resource, name, operation in grants
    ]


def make_certificates(certs: Path) -> None:
    """A local CA and a broker certificate for localhost and 127.0.0.1 (the advertised host),
    once; the broker reads its key and chain as one PEM file, so no keystore password exists."""
    if (certs / "broker-keystore.pem").exists():
        return
    certs.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    (certs / "broker.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    ca = "-subj /CN=orders-local-kafka-ca -addext basicConstraints=critical,CA:TRUE"
    steps = [
        f"req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 {ca}"
        " -addext keyUsage=critical,keyCertSign,cRLSign",
        "req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost",
        "x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825"
        " -extfile broker.ext -out broker.pem",
    ]
    for step in steps:
        result = subprocess.run(
            ["openssl", *step.split()], cwd=certs, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BrokerError(f"openssl {step} failed:\n{result.stderr}")
    chain = "".join((certs / name).read_text() for name in ("broker.key", "broker.pem", "ca.pem"))
    write_private(certs / "broker-keystore.pem", chain)
    for key in ("ca.key", "broker.key"):
        (certs / key).chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@dataclass
class SecureBroker(LocalBroker):
    """A LocalBroker whose one client listener is SASL_SSL (SCRAM-SHA-512) with ACLs enforced."""

    port: int = 9093
    controller_port: int = 9094
    passwords: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @property
    def certs_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def ca_location(self) -> Path:
        return self.certs_dir / "ca.pem"

    @property
    def credentials_file(self) -> Path:
        return self.workdir / "credentials.env"

    def properties(self) -> str:
        # The controller listener authenticates too: a PLAINTEXT one makes the broker itself
        # User:ANONYMOUS, which is either refused or, as a super user, lets anyone in.
        jaas = f'{SCRAM_LOGIN} required username="{ADMIN}" password="{self.password(ADMIN)}";'
        keystore = self.certs_dir / "broker-keystore.pem"
        security = {
            "listeners": f"CLIENT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "CLIENT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "sasl.mechanism.controller.protocol": MECHANISM,
            f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            f"listener.name.controller.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_location),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }
        return server_properties(
            self.port, self.controller_port, self.workdir / "data", overrides=security
        )

    def format_args(self) -> list[str]:
        scram = [
            f"{MECHANISM}=[name={user},password={password}]"
            for user, password in self.passwords.items()
        ]
        return ["--standalone", *(arg for each in scram for arg in ("--add-scram", each))]

    def client_env(self, user: str) -> dict[str, str]:
        """The environment a service or tool needs to connect as `user`."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SSL_CA_LOCATION": str(self.ca_location),
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.password(user),
        }

    def client_settings(self, user: str) -> KafkaSettings:
        from pydantic import SecretStr

        from shared.settings import KafkaSettings

        return KafkaSettings(
            kafka_bootstrap_servers=self.bootstrap_servers,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=MECHANISM,
            kafka_sasl_username=user,
            kafka_sasl_password=SecretStr(self.password(user)),
            kafka_ssl_ca_location=self.ca_location,
        )

    def admin_config(self) -> dict[str, Any]:
        from shared.kafka import common_config

        return common_config(self.client_settings(ADMIN), "kafka-local-admin")

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        make_certificates(self.certs_dir)
        self._load_or_create_users()
        super().start(timeout)

    def _load_or_create_users(self) -> None:
        # Users are created when the storage is formatted, so a formatted broker keeps its users'
        # passwords: they are read back from the credentials file written then.
        if self.credentials_file.exists():
            self.passwords = self._saved_passwords()
        elif (self.workdir / "data" / "meta.properties").exists():
            raise BrokerError(
                f"{self.workdir} holds a formatted broker but no {self.credentials_file.name}: "
                "its users' passwords are lost; delete the directory to start afresh"
            )
        else:
            self.passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        write_private(self.credentials_file, self.credentials())

    def _saved_passwords(self) -> dict[str, str]:
        saved = read_env_file(self.credentials_file)
        return {user: saved[f"KAFKA_SASL_PASSWORD_{user.upper()}"] for user in USERS}

    def password(self, user: str) -> str:
        """`user`'s password: generated at format time, read back for a broker already running."""
        if not self.passwords and self.credentials_file.exists():
            self.passwords = self._saved_passwords()
        if user not in self.passwords:
            raise BrokerError(f"no password for {user!r}: {self.credentials_file} is missing")
        return self.passwords[user]

    def credentials(self) -> str:
        lines = [
            "# What a client needs to reach the local SASL_SSL broker. Keep it private.",
            f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
            f"KAFKA_SASL_MECHANISM={MECHANISM}",
            f"KAFKA_SSL_CA_LOCATION={self.ca_location}",
        ]
        for user in USERS:
            lines += [
                f"KAFKA_SASL_USERNAME_{user.upper()}={user}",
                f"KAFKA_SASL_PASSWORD_{user.upper()}={self.passwords[user]}",
            ]
        return "\n".join(lines) + "\n"

    def grant(self, access: OrderAccess, timeout: float = 30.0) -> None:
        """Create the ACLs for `access` (creating an existing one changes nothing)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.admin_config())
        for binding, future in admin.create_acls(acl_bindings(access)).items():
            try:
                future.result(timeout=timeout)
            except Exception as exc:
                raise BrokerError(f"could not create the ACL {binding}: {exc}") from exc


def broker_from_env() -> SecureBroker:
    """The secure broker `make kafka-secure` and `KAFKA_SECURE=1 make run` share
    (KAFKA_SECURE_PORT, KAFKA_SECURE_DIR)."""
    workdir = Path(os.environ.get("KAFKA_SECURE_DIR", REPO / ".cache" / "kafka-secure"))
    port = int(os.environ.get("KAFKA_SECURE_PORT", "9093"))
    return SecureBroker(workdir, port=port, controller_port=port + 1)
