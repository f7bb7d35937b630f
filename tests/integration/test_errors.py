"""outboxd refuses misconfigurations and unpublishable events: it exits (never hangs) with
exit code 2 (configuration the user must fix) or 1 (runtime: an event that cannot be
published), logging ONE error line that names the problem and the fix; secrets never
reach the log.

Needs the local stack (scripts/stack.sh start) and a built outboxd (docs/testing.md).
The output_plugin_libraries test changes the stack's PostgreSQL settings (ALTER SYSTEM)
and always restores them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import psycopg
import pytest

from harness import (
    PG2_PASSWORD,
    PLUGIN_LIBS_OK,
    REPO,
    create_database,
    default_inboxd_bin,
    default_outboxd_bin,
    drop_database,
    lsn_to_int,
    set_plugin_libraries,
    unique_name,
)

EXIT_RUNTIME = 1
EXIT_CONFIG = 2
SECRET = "SeCrEt123"


# --------------------------------------------------------------------------- helpers


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\bERROR:", line)]


def expect_failure(p, code: int = EXIT_CONFIG, timeout: float = 20) -> str:
    """Waits (bounded) for outboxd to exit with `code`; returns its ONE error line."""
    t0 = time.monotonic()
    rc = p.wait_exit(timeout)
    took = time.monotonic() - t0
    log = p.log_text(all_runs=False)
    assert rc == code, f"exit code {rc}, expected {code} (after {took:.1f}s); log:\n{log}"
    errs = error_lines(log)
    assert len(errs) == 1, f"expected one error line, got {len(errs)}:\n" + "\n".join(errs)
    for ref in re.findall(r"\b(?:sql|docs)/[\w./-]+\.(?:sql|md)\b", errs[0]):
        assert (REPO / ref).is_file(), f"the error refers to {ref}, which does not exist:\n{errs[0]}"
    return errs[0]


def assert_words(line: str, *words: str):
    for w in words:
        assert w in line, f"{w!r} not in error line:\n{line}"


def run_bin(binary, *args, env=None, timeout=10) -> subprocess.CompletedProcess:
    """Runs outboxd directly (no harness config file), without the harness's OUTBOXD_* env."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_")}
    e.update(env or {})
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, env=e,
                          stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- configuration keys


def test_unknown_key_in_config_file_names_it_and_suggests_the_closest(outboxd):
    p = outboxd({"outbox.topik": "x.${aggregate_type}"})
    line = expect_failure(p)
    assert_words(line, "unknown config key 'outbox.topik'", "did you mean 'outbox.topic'", str(p.config_path))
    assert re.search(re.escape(str(p.config_path)) + r":\d+", line), "the error names the file and line"


def test_unknown_key_in_x_option_names_it_and_suggests_the_closest(outboxd):
    p = outboxd(args=["-X", "status.intervall.ms=500"])
    line = expect_failure(p)
    assert_words(line, "unknown config key 'status.intervall.ms'", "-X", "did you mean 'status.interval.ms'")


def test_unknown_outboxd_environment_variable_names_it_and_suggests_the_closest(outboxd):
    p = outboxd(env={"OUTBOXD_POSTGRES_SLOTT": "x"})
    line = expect_failure(p)
    assert_words(line, "OUTBOXD_POSTGRES_SLOTT", "did you mean OUTBOXD_POSTGRES_SLOT")


@pytest.mark.parametrize("key,value,words", [
    ("status.interval.ms", "abc", ["'abc'", "status.interval.ms", "integer from 100 to"]),
    ("status.interval.ms", "5", ["'5'", "status.interval.ms", "integer from 100 to"]),
    ("postgres.slot.create", "maybe", ["'maybe'", "postgres.slot.create", "true/false"]),
    ("log.level", "verbose", ["'verbose'", "log.level", "error, warn, info, debug"]),
])
def test_bad_values_name_the_key(outboxd, key, value, words):
    p = outboxd({key: value})
    line = expect_failure(p)
    assert_words(line, *words, str(p.config_path))


def test_bad_value_from_x_option(outboxd):
    line = expect_failure(outboxd(args=["-X", "relay.max.inflight.events=0"]))
    assert_words(line, "relay.max.inflight.events", "(-X)", "integer from 1 to")


def test_bad_topic_template_is_refused_before_streaming(outboxd):
    line = expect_failure(outboxd({"outbox.topic": "x.${aggregate}"}))
    assert_words(line, "unknown placeholder", "${aggregate}", "${aggregate_type}")


# --------------------------------------------------------------------------- command line


def test_help_lists_every_key_and_exits_0(outboxd_bin):
    r = run_bin(outboxd_bin, "--help")
    assert r.returncode == 0, r.stderr
    for key in ("postgres.conninfo", "postgres.slot", "postgres.slot.create", "outbox.table", "outbox.topic",
                "outbox.column.payload", "outbox.message.prefix", "status.interval.ms", "startup.timeout.ms",
                "shutdown.timeout.ms", "log.level", "kafka.<property>", "OUTBOXD_POSTGRES_CONNINFO"):
        assert key in r.stdout, f"--help does not list {key}"


def test_version(outboxd_bin):
    r = run_bin(outboxd_bin, "--version")
    assert r.returncode == 0
    assert re.fullmatch(r"outboxd \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


@pytest.mark.parametrize("args", [["--frobnicate"], ["-c"], ["-X"], ["extra-positional"]])
def test_unknown_or_incomplete_cli_argument_exits_2(outboxd_bin, args):
    r = run_bin(outboxd_bin, *args)
    assert r.returncode == EXIT_CONFIG, (r.returncode, r.stdout, r.stderr)
    assert f"'{args[0]}'" in r.stderr and "usage:" in r.stderr


def test_missing_config_file(outboxd_bin, tmp_path):
    r = run_bin(outboxd_bin, "-c", str(tmp_path / "nope.conf"))
    assert r.returncode == EXIT_CONFIG
    assert len(error_lines(r.stdout + r.stderr)) == 1
    assert "cannot open config file" in r.stdout + r.stderr and "nope.conf" in r.stdout + r.stderr


# --------------------------------------------------------------------------- outbox table


def test_outbox_table_missing_points_at_sql_outbox_sql(outboxd, db):
    db.execute("DROP TABLE outbox")
    line = expect_failure(outboxd())
    assert_words(line, "public.outbox", "does not exist", "sql/outbox.sql", "outbox.table")
    assert (REPO / "sql" / "outbox.sql").is_file()
    assert db.slots() == [], "no slot is created for a database without an outbox table"


def test_mapped_column_missing_names_column_and_key(outboxd, db):
    line = expect_failure(outboxd({"outbox.column.payload": "nope"}))
    assert_words(line, '"nope"', "public.outbox", "outbox.column")


# --------------------------------------------------------------------------- privileges, plugins, slots


def test_missing_replication_privilege_prints_alter_role(outboxd, db, login_role):
    conninfo = psycopg.conninfo.make_conninfo(db.conninfo, user=login_role)
    line = expect_failure(outboxd({"postgres.conninfo": conninfo}))
    assert_words(line, f'ALTER ROLE "{login_role}" REPLICATION;', "sql/roles.sql")


def test_wal2json_not_allowed_prints_the_working_alter_system_line(outboxd, db, stack):
    try:
        set_plugin_libraries(stack, "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding", False)
        p = outboxd()
        line = expect_failure(p)
        assert_words(line, PLUGIN_LIBS_OK + ";", "pg_reload_conf()")
        assert db.slots() == []
        # The printed line is the fix: run it as printed, then outboxd starts.
        fix = re.search(r"(ALTER SYSTEM SET output_plugin_libraries = [^;]+;)", line).group(1)
        set_plugin_libraries(stack, fix, True)
        p.start()
        p.wait_for_log(r"streaming slot", timeout=60)
        ev = db.insert_event("plugin", "k", "e", {"fixed": True})
        db.wait_slot_confirmed(f"{db.dbname}_slot", db.current_wal_lsn(), timeout=30)
        assert ev
    finally:
        set_plugin_libraries(stack, PLUGIN_LIBS_OK, True)


def test_existing_slot_with_another_plugin(outboxd, db):
    slot = f"{db.dbname}_slot"
    db.create_slot(slot, "test_decoding")
    line = expect_failure(outboxd())
    assert_words(line, f'"{slot}"', "test_decoding", "wal2json", "postgres.slot",
                 f"pg_drop_replication_slot('{slot}')")
    assert db.slot_info(slot)["plugin"] == "test_decoding", "the foreign slot is left alone"


def test_slot_create_false_and_no_slot(outboxd, db):
    slot = f"{db.dbname}_slot"
    line = expect_failure(outboxd({"postgres.slot.create": "false"}))
    assert_words(line, f'"{slot}"', "does not exist", f"pg_create_logical_replication_slot('{slot}', 'wal2json')",
                 "postgres.slot.create")
    assert db.slots() == []


def test_slot_of_another_database(outboxd, db, stack):
    other = create_database(stack)
    try:
        slot = unique_name("s")
        other.create_slot(slot)
        line = expect_failure(outboxd({"postgres.slot": slot}))
        assert_words(line, f'"{slot}"', f'"{other.dbname}"', f'"{db.dbname}"', "postgres.slot")
    finally:
        drop_database(other)


# --------------------------------------------------------------------------- connection


@pytest.mark.parametrize("form", ["keywords", "uri"])
def test_nonexistent_database_exits_2_and_never_logs_the_password(outboxd, stack, form):
    dbname = unique_name("nodb")
    if form == "keywords":
        conninfo = f"host=127.0.0.1 port={stack.pg_port} user=postgres password={SECRET} dbname={dbname}"
    else:
        conninfo = f"postgresql://postgres:{SECRET}@127.0.0.1:{stack.pg_port}/{dbname}?connect_timeout=5"
    p = outboxd({"postgres.conninfo": conninfo})
    line = expect_failure(p)
    assert_words(line, dbname, "does not exist")
    assert SECRET not in p.log_text()


def test_kafka_unreachable_exits_quickly_naming_bootstrap_servers(outboxd):
    """Exit 1, not 2: a broker that is down at boot is worth a restart (the systemd units do
    not restart after exit 2)."""
    p = outboxd({"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 2000})
    t0 = time.monotonic()
    rc = p.wait_exit(15)
    took = time.monotonic() - t0
    assert rc == EXIT_RUNTIME, p.log_text()
    assert took < 6, f"took {took:.1f}s with startup.timeout.ms = 2000"
    own = [line for line in error_lines(p.log_text()) if " ERROR: kafka " not in line]  # librdkafka's own logs
    assert len(own) == 1, own
    assert_words(own[0], "bootstrap.servers=127.0.0.1:1", "kafka.bootstrap.servers", "2000")


def test_sigterm_during_the_startup_kafka_wait_stops_at_once(outboxd):
    """docs/operations.md: a signal while outboxd waits for Kafka at startup takes effect at
    once (not when startup.timeout.ms runs out)."""
    p = outboxd({"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 60000})
    p.wait_for_log(r"outboxd \S+ starting", 10)
    time.sleep(1.2)  # inside the wait
    t0 = time.monotonic()
    rc = p.terminate(10)
    took = time.monotonic() - t0
    assert rc == 0, p.log_tail()
    assert took < 2, f"SIGTERM took {took:.1f} s during the Kafka wait"
    assert "stopped before streaming" in p.log_text()


def test_missing_topic_is_named_at_once_and_stops_as_a_config_error(outboxd, db, kafka, topic_prefix):
    """A topic that does not exist and is not created (the client may not create topics): the
    broker's answer (UNKNOWN_TOPIC_OR_PART) is asked for once nothing is acknowledged for 2 s,
    so outboxd stops within seconds (not "Kafka acknowledged nothing for 15000 ms" and an exit
    after ~31 s); the one error line names the topic and the fix, and the exit code is 2, which
    a supervisor does not restart into the same failure."""
    p = outboxd({"outbox.topic": f"{topic_prefix}.${{aggregate_type}}", "kafka.allow.auto.create.topics": "false"})
    p.wait_for_log("streaming slot", 30)
    t0 = time.monotonic()
    eid = db.insert_event("invoice", "k", "e", {"a": 1})
    line = expect_failure(p, EXIT_CONFIG, timeout=30)
    took = time.monotonic() - t0
    assert took < 10, f"took {took:.1f} s"
    topic = f"{topic_prefix}.invoice"
    assert eid
    assert_words(line, f"topic {topic} does not exist and is not created automatically",
                 "1 event in flight cannot be published", f"create topic {topic}", f"--create --topic {topic}",
                 "auto.create.topics.enable", "outbox.on_invalid = dead-letter")
    assert "acknowledged nothing" not in p.log_text()
    assert topic not in kafka.topics(topic_prefix)


def test_kafka_unreachable_logs_one_error_line(outboxd):
    p = outboxd({"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 2000})
    line = expect_failure(p, EXIT_RUNTIME, timeout=15)
    assert_words(line, "bootstrap.servers")


def test_kafka_property_rejected_by_librdkafka_is_a_config_error(outboxd):
    """Unlike an unreachable broker (exit 1), a property librdkafka rejects needs a fix: exit 2."""
    line = expect_failure(outboxd({"kafka.no.such.property": "1"}))
    assert_words(line, "kafka.no.such.property", 'librdkafka has no property "no.such.property"')


def test_kafka_properties_are_checked_when_the_file_is_read(tmp_path):
    """kafka.* keys are checked against librdkafka when the file is read, like outboxd's own
    keys: the file and line, and the property a misspelt name meant; --print-config fails on
    them as the daemon does; a key that is the start of known keys suggests them."""
    conf = tmp_path / "typo.conf"
    conf.write_text("# a comment\nkafka.bootstrap.server = 127.0.0.1:9092\n")
    for binary, prefix in ((default_outboxd_bin(), "OUTBOXD_"), (default_inboxd_bin(), "INBOXD_")):
        for args in (("-c", str(conf)), ("-c", str(conf), "--print-config")):
            r = run_bin(binary, *args, "-X", "inbox.topics=t" if prefix == "INBOXD_" else "log.level=info")
            assert r.returncode == EXIT_CONFIG and r.stdout == "", (binary, args, r.stdout, r.stderr)
            assert_words(r.stderr, f"unknown config key 'kafka.bootstrap.server' ({conf}:2)",
                         "did you mean 'kafka.bootstrap.servers'?")
        r = run_bin(binary, "--print-config", env={f"{prefix}KAFKA_LINGER_MS": "-5",
                                                   f"{prefix}KAFKA_BOOTSTRAP_SERVERS": "b:9092"})
        assert r.returncode == EXIT_CONFIG, r.stderr
        assert_words(r.stderr, f"invalid value '-5' for kafka.linger.ms (env {prefix}KAFKA_LINGER_MS)", "-5")
        r = run_bin(binary, "--print-config", "-X", "bootstrap.servers=b:9092")
        assert r.returncode == EXIT_CONFIG and "did you mean 'kafka.bootstrap.servers'?" in r.stderr, r.stderr
    r = run_bin(default_outboxd_bin(), "-X", "relay.max.inflight=5", "--print-config")
    assert r.returncode == EXIT_CONFIG
    assert_words(r.stderr, "unknown config key 'relay.max.inflight' (-X); did you mean 'relay.max.inflight.events' "
                           "or 'relay.max.inflight.txns'?")


@pytest.mark.parametrize("daemon", ["outboxd", "inboxd"])
def test_print_config_fails_exactly_when_the_daemon_would(daemon, tmp_path):
    """--print-config makes the checks the daemon makes before it connects anywhere: without
    kafka.bootstrap.servers (or with a forbidden or unroutable setting) both exit 2 with the same
    line; with a complete file both get past the configuration."""
    binary = default_outboxd_bin() if daemon == "outboxd" else default_inboxd_bin()
    base = {"postgres.conninfo": "host=127.0.0.1 port=1 dbname=x connect_timeout=1"}
    if daemon == "inboxd":
        base["inbox.topics"] = "t"
    bad = [({}, "kafka.bootstrap.servers is not set")]
    if daemon == "outboxd":
        bad += [({"kafka.bootstrap.servers": "b:9092", "kafka.acks": "1"}, "kafka.acks=1 is not allowed"),
                ({"kafka.bootstrap.servers": "b:9092", "outbox.topic": "a b"}, "is not allowed in a Kafka topic name")]
    else:
        bad += [({"kafka.bootstrap.servers": "b:9092", "kafka.enable.auto.commit": "true"},
                 "kafka.enable.auto.commit=true is not allowed")]
    for extra, words in bad:
        conf = tmp_path / "c.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in {**base, **extra}.items()))
        printed = run_bin(binary, "-c", str(conf), "--print-config")
        ran = run_bin(binary, "-c", str(conf), "-X", "startup.timeout.ms=100", "-X", "http.listen=", timeout=30)
        assert printed.returncode == ran.returncode == EXIT_CONFIG, (extra, printed.stderr, ran.stderr)
        assert printed.stdout == "", printed.stdout
        strip = lambda t: re.sub(r"^\S+ \w+\[\d+\] ", "", t.strip())  # noqa: E731 (time and pid)
        assert words in printed.stderr and strip(printed.stderr) == strip(ran.stderr), (printed.stderr, ran.stderr)
    conf = tmp_path / "ok.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in {**base, "kafka.bootstrap.servers": "b:9092"}.items()))
    printed = run_bin(binary, "-c", str(conf), "--print-config")
    assert printed.returncode == 0 and "kafka.bootstrap.servers = b:9092" in printed.stdout, printed.stderr


def test_kafka_bootstrap_servers_not_set(outboxd):
    line = expect_failure(outboxd({"kafka.bootstrap.servers": None}))
    assert_words(line, "kafka.bootstrap.servers", "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS")


# --------------------------------------------------------------------------- a throwaway PostgreSQL
# pg_replica (conftest.py): a second server with wal_level = replica and password authentication.


def test_wal_level_not_logical(outboxd, pg_replica):
    conninfo = f"host=127.0.0.1 port={pg_replica} user=postgres dbname=postgres password={PG2_PASSWORD}"
    p = outboxd({"postgres.conninfo": conninfo})
    line = expect_failure(p)
    assert_words(line, "wal_level", "'replica'", "ALTER SYSTEM SET wal_level = logical;", "restart PostgreSQL")
    assert PG2_PASSWORD not in p.log_text()


@pytest.mark.parametrize("form", ["keywords", "uri"])
def test_wrong_password_exits_2_and_never_logs_the_password(outboxd, pg_replica, form):
    if form == "keywords":
        conninfo = f"host=127.0.0.1 port={pg_replica} user=postgres dbname=postgres password='{SECRET}'"
    else:
        conninfo = f"postgresql://postgres:{SECRET}@127.0.0.1:{pg_replica}/postgres"
    p = outboxd({"postgres.conninfo": conninfo})
    line = expect_failure(p)
    assert_words(line, "password authentication failed", "postgres")
    assert SECRET not in p.log_text()
    assert "***" in p.log_text(), "the start line shows the conninfo with the password redacted"


# --------------------------------------------------------------------------- unpublishable events


def _bad_topic(db, c):
    return db.insert_event("a b/c", "k1", "e", {"bad": True}, conn=c), ["not a valid Kafka topic name", '.a b/c"']


def _headers_not_object(db, c):
    return db.insert_event("good", "k1", "e", {}, headers=[1, 2], conn=c), ["headers (column 'headers')",
                                                                            "not a JSON object"]


def _null_aggregate_type(db, c):
    return db.insert_event(None, "k1", "e", {}, conn=c), ["aggregate_type is NULL", "topic template"]


def _null_payload(db, c):
    return db.insert_event("good", "k1", "e", None, conn=c), ["payload (column 'payload') is NULL"]


def _unparsable_envelope(db, c):
    db.emit_message("{not json", conn=c)
    return "(no id)", ["unparsable outbox message envelope"]


def _envelope_without_payload(db, c):
    db.emit_message('{"id": "m-bad", "aggregate_type": "good", "aggregate_id": "k1"}', conn=c)
    return "m-bad", ["unparsable outbox message envelope", '"payload" missing']


@pytest.mark.parametrize("make_bad", [_bad_topic, _headers_not_object, _null_aggregate_type, _null_payload,
                                      _unparsable_envelope, _envelope_without_payload],
                         ids=lambda f: f.__name__.strip("_"))
def test_unpublishable_event_stops_with_exit_1_naming_event_and_lsn_and_keeps_the_slot(
        outboxd, db, kafka, topic_prefix, make_bad):
    slot = f"{db.dbname}_slot"
    # sql/outbox.sql declares them NOT NULL; other outbox tables may not
    db.execute("ALTER TABLE outbox ALTER COLUMN aggregate_type DROP NOT NULL, ALTER COLUMN payload DROP NOT NULL")
    p = outboxd()
    p.wait_for_log(r"streaming slot", timeout=60)
    good = [db.insert_event("good", f"k{i}", "e", {"i": i}) for i in range(5)]
    c = db.connect(autocommit=False)
    before_bad = db.current_wal_lsn()
    bad, words = make_bad(db, c)
    c.commit()
    after_bad = db.current_wal_lsn()
    later = db.insert_event("good", "k1", "e", {"after": True})

    line = expect_failure(p, EXIT_RUNTIME, timeout=30)
    assert_words(line, f"event {bad} at LSN", *words, "the slot stays before it")
    m = re.search(r"at LSN ([0-9A-F]+/[0-9A-F]+)", line)
    assert lsn_to_int(before_bad) <= lsn_to_int(m.group(1)) <= lsn_to_int(after_bad), (m.group(1), before_bad,
                                                                                        after_bad)
    # The events committed before it were published; nothing at or after it was.
    records = kafka.consume(f"{topic_prefix}.good", timeout=30, settle=2)
    ids = [r.header("id").decode() for r in records]
    assert sorted(ids) == sorted(good), ids
    assert later not in ids
    confirmed = lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"])
    assert confirmed <= lsn_to_int(m.group(1)), "the slot was confirmed past the unpublishable event"
    # Never a silent drop: a restart stops at the same event again.
    p.start()
    line2 = expect_failure(p, EXIT_RUNTIME, timeout=30)
    assert f"event {bad} at LSN {m.group(1)}" in line2
    assert lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"]) <= lsn_to_int(m.group(1))


def test_non_transactional_outbox_message_stops_with_exit_1(outboxd, db):
    p = outboxd()
    p.wait_for_log(r"streaming slot", timeout=60)
    lsn = db.emit_message('{"id":"nt-1","aggregate_type":"x","aggregate_id":"k","payload":{}}',
                          transactional=False)
    line = expect_failure(p, EXIT_RUNTIME, timeout=30)
    assert_words(line, "non-transactional outbox message", lsn, "pg_logical_emit_message(true")
