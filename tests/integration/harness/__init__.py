"""Integration-test harness for outboxd and inboxd: stack, databases, Kafka, daemons, partition oracle, HTTP ops.

The fixtures in conftest.py wrap these; tests import what they need from here
(`from harness import Db, wait_until`). The stack (PostgreSQL + Kafka) is started by
scripts/stack.sh, never by the tests; the TLS stack (scripts/tls-stack.sh) is started by the
tls_stack fixture when it does not run. Modules by job:

- util: unique_name, wait_until
- stack: Stack (stack.env), StackFaults (scripts/stack.sh pg-stop, kafka-kill, ...)
- db: Db, create_database, create_inbox_database, drop_database, LSN arithmetic
- kafka: Kafka (topics, produce, consume, group assignment), Record, kafka_committed
- daemons: Outboxd, Inboxd, write_config, default binaries, sanitizer reports
- partition: the partition oracle (murmur2, python_partition, java_partition(s))
- ops: the daemons' HTTP endpoint (free_port, http_get, scrape, wait_metric, wait_status)
- ordered: an ordered event load and the exactly-once, per-key-order check (exactly-once tests)
- pgserver: output_plugin_libraries, login roles, a throwaway wal_level=replica server
- debezium: the real Debezium next to outboxd (rows, converter settings, Kafka Connect,
  recorded output); imported as a module: `from harness import debezium`
- tools: YAML, promtool, helm, kubeconform and its Kubernetes schemas (the deployment tests)
- netfault: a network namespace per test, a bridge to the stack, loss/partition/half-open/delay
- faultload: the fault tests' event writers, oracle slot, read-back and outcome (measure, verify)
- faultreport: the fault suite's results file (docs/reliability.md)
- tls: TlsStack (scripts/tls-stack.sh: TLS-only PostgreSQL, SASL_SSL Kafka, CA, secrets)
"""

from .daemons import (
    HARNESS_ENV_PREFIX,
    SANITIZER_REPORT,
    Inboxd,
    Outboxd,
    default_inboxd_bin,
    default_outboxd_bin,
    write_config,
)
from .db import (
    INBOX_SQL,
    OUTBOX_SQL,
    Db,
    create_database,
    create_inbox_database,
    drop_database,
    int_to_lsn,
    lsn_to_int,
)
from .kafka import Kafka, Record, kafka_committed
from .netfault import NetNs
from .netfault import available as netfault_unavailable
from .ops import free_port, http_get, scrape, wait_metric, wait_status
from .ordered import (
    OrderedLoad,
    check_exactly_once_in_order,
    per_key_counts,
    read_events,
    setup_ordered,
)
from .partition import PARTITION_JAVA, java_partition, java_partitions, murmur2, python_partition, random_keys
from .pgserver import (
    PG2_PASSWORD,
    PLUGIN_LIBS_OK,
    create_login_role,
    drop_role,
    drop_roles_of,
    psql_file,
    pg2_port,
    set_plugin_libraries,
    throwaway_postgres,
)
from .tls import KAFKA_USERS, PG_ROLES, TLS_STACK_SH, TlsStack
from .stack import DEFAULT_STACK_DIR, REPO, STACK_SH, Stack, StackFaults, StackNotRunning, parse_env_file
from .tools import K8S_VERSION, kubeconform_schemas, load_yaml, tool
from .util import unique_name, wait_until

__all__ = [
    # util
    "unique_name", "wait_until",
    # stack
    "REPO", "STACK_SH", "DEFAULT_STACK_DIR", "Stack", "StackFaults", "StackNotRunning", "parse_env_file",
    # db
    "OUTBOX_SQL", "INBOX_SQL", "Db", "create_database", "create_inbox_database", "drop_database",
    "lsn_to_int", "int_to_lsn",
    # kafka
    "Kafka", "Record", "kafka_committed",
    # daemons
    "HARNESS_ENV_PREFIX", "SANITIZER_REPORT", "Outboxd", "Inboxd", "write_config",
    "default_outboxd_bin", "default_inboxd_bin",
    # partition
    "PARTITION_JAVA", "murmur2", "python_partition", "java_partitions", "java_partition", "random_keys",
    # netfault
    "NetNs", "netfault_unavailable",
    # ops
    "free_port", "http_get", "scrape", "wait_metric", "wait_status",
    # pgserver
    "PLUGIN_LIBS_OK", "set_plugin_libraries", "create_login_role", "drop_role", "drop_roles_of", "psql_file",
    "PG2_PASSWORD", "pg2_port", "throwaway_postgres",
    # tools
    "K8S_VERSION", "kubeconform_schemas", "load_yaml", "tool",
    # tls
    "TLS_STACK_SH", "TlsStack", "PG_ROLES", "KAFKA_USERS",
]
