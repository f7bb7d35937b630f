/* test_stream_connect.c - the slot policy: stream a free slot of ours, stand by while another
 * process streams it, refuse a slot of another plugin or database, never recreate a slot
 * that disappeared while streamed or that the progress record says was published from:
 * recover it from the record (or refuse under postgres.slot.on_lost = fail, without a record,
 * or with a record of another system); create a missing one only when allowed (by backfill
 * when outbox.backfill.where is set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stream_connect.h"

static const stream_connect_options_t opts = {
    .slot = "shop_slot", .create_slot = true, .recover = true, .progress_table = "public.outboxd_progress"};

static const progress_record_t rec = {
    .system_id = "7390000000000000001", .timeline = 1, .confirmed = 0x16B3F28, .horizon = 900};

static repl_slot_info_t existing(const char *plugin, const char *db, bool active) {
    repl_slot_info_t s = {.exists = true, .active = active, .active_pid = active ? 4242 : 0};
    snprintf(s.plugin, sizeof(s.plugin), "%s", plugin);
    snprintf(s.database, sizeof(s.database), "%s", db);
    return s;
}

static void test_existing_slot(void **state) {
    (void)state;
    char err[1024];
    repl_slot_info_t s = existing("wal2json", "shop", false);
    assert_int_equal(stream_connect_decide(&opts, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)), STREAM_SLOT_USE);
    assert_int_equal(stream_connect_decide(&opts, &s, NULL, true, 0, NULL, NULL, err, sizeof(err)), STREAM_SLOT_USE);

    s = existing("wal2json", "shop", true);
    assert_int_equal(stream_connect_decide(&opts, &s, "shop", true, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_STANDBY);
    assert_non_null(strstr(err, "\"shop_slot\" is in use by PID 4242"));

    s = existing("test_decoding", "shop", false);
    assert_int_equal(stream_connect_decide(&opts, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "uses plugin test_decoding, but postgres.plugin = wal2json"));
    assert_non_null(strstr(err, "pg_drop_replication_slot('shop_slot')"));

    /* postgres.plugin = pgoutput: its own slots are used, a wal2json slot is refused (and
     * the reverse): switching plugins is an explicit step. */
    stream_connect_options_t pgo = opts;
    pgo.plugin = PLUGIN_PGOUTPUT;
    s = existing("pgoutput", "shop", false);
    assert_int_equal(stream_connect_decide(&pgo, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)), STREAM_SLOT_USE);
    assert_int_equal(stream_connect_decide(&opts, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(
        strstr(err, "uses plugin pgoutput, but postgres.plugin = wal2json: set postgres.plugin = pgoutput"));
    s = existing("wal2json", "shop", false);
    assert_int_equal(stream_connect_decide(&pgo, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "uses plugin wal2json, but postgres.plugin = pgoutput"));
    repl_slot_info_t none = {.exists = false};
    pgo.create_slot = false;
    assert_int_equal(stream_connect_decide(&pgo, &none, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "pg_create_logical_replication_slot('shop_slot', 'pgoutput')"));

    s = existing("wal2json", "other", false);
    assert_int_equal(stream_connect_decide(&opts, &s, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "belongs to database \"other\""));
}

static void test_missing_slot(void **state) {
    (void)state;
    char err[1024] = "";
    repl_slot_info_t none = {.exists = false};
    assert_int_equal(stream_connect_decide(&opts, &none, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_CREATE);

    stream_connect_options_t backfill = opts;
    backfill.backfill = true;
    assert_int_equal(stream_connect_decide(&backfill, &none, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_BACKFILL);

    stream_connect_options_t no_create = opts;
    no_create.create_slot = false;
    assert_int_equal(stream_connect_decide(&no_create, &none, "shop", false, 0, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "postgres.slot.create is false"));

    /* Lost while streamed, without a record: never recreated silently, whatever
     * postgres.slot.create says. */
    assert_int_equal(stream_connect_decide(&backfill, &none, "shop", true, 0x16B3F28, NULL, NULL, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "is missing although outboxd published from this database"));
    assert_non_null(strstr(err, "no progress record"));
    assert_non_null(strstr(err, "events committed since 0/16B3F28"));
}

static void test_lost_slot(void **state) {
    (void)state;
    char err[1024] = "";
    repl_slot_info_t none = {.exists = false};
    const char *sys = "7390000000000000001";
    /* Missing, with a record of this system: recover, also on a first start of this process
     * (a restart after a failover) and when postgres.slot.create = false. */
    assert_int_equal(stream_connect_decide(&opts, &none, "shop", false, 0, &rec, sys, err, sizeof(err)),
                     STREAM_SLOT_RECOVER);
    assert_non_null(strstr(err, "is missing"));
    stream_connect_options_t no_create = opts;
    no_create.create_slot = false;
    assert_int_equal(stream_connect_decide(&no_create, &none, "shop", true, 0, &rec, sys, err, sizeof(err)),
                     STREAM_SLOT_RECOVER);
    /* Invalidated: recover too. */
    repl_slot_info_t lost = existing("wal2json", "shop", false);
    lost.lost = true;
    assert_int_equal(stream_connect_decide(&opts, &lost, "shop", true, 0, &rec, sys, err, sizeof(err)),
                     STREAM_SLOT_RECOVER);
    assert_non_null(strstr(err, "was invalidated"));
    /* postgres.slot.on_lost = fail: the runbook, from the record's position. */
    stream_connect_options_t fail = opts;
    fail.recover = false;
    assert_int_equal(stream_connect_decide(&fail, &lost, "shop", true, 0, &rec, sys, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "events committed since 0/16B3F28"));
    assert_non_null(strstr(err, "postgres.slot.on_lost = recover"));
    /* A record of another system cannot bound anything here. */
    assert_int_equal(
        stream_connect_decide(&opts, &none, "shop", false, 0, &rec, "7390000000000000002", err, sizeof(err)),
        STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "another PostgreSQL system"));
    /* A lost slot of another plugin is still refused as such. */
    repl_slot_info_t other = existing("test_decoding", "shop", false);
    other.lost = true;
    assert_int_equal(stream_connect_decide(&opts, &other, "shop", true, 0, &rec, sys, err, sizeof(err)),
                     STREAM_SLOT_REFUSE);
    assert_non_null(strstr(err, "but postgres.plugin = wal2json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_existing_slot),
        cmocka_unit_test(test_missing_slot),
        cmocka_unit_test(test_lost_slot),
    };
    return cmocka_run_group_tests_name("stream_connect", tests, NULL, NULL);
}
