/* test_config_doc.c - unit tests for config_doc.c: the example file and the man page's key
 * list generated from a key table (types, defaults, environment names, wrapping, escaping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_doc.h"

static const config_key_t keys[] = {
    {"a.name", CONFIG_STRING, "", 0, 0, NULL, false, "what a.name is"},
    {"a.count", CONFIG_INT, "5", 1, 10, NULL, false, "how many"},
    {"a.mode", CONFIG_ENUM, "x", 0, 0, "x|y|z", false, "the mode"},
    {"a.on", CONFIG_BOOL, "true", 0, 0, NULL, false, "switch"},
    {"a.secret", CONFIG_STRING, "-", 0, 0, NULL, true,
     "a \\ backslash, and a long help text that goes on and on "
     "until it must be wrapped onto a second comment line"},
    {"a.hash", CONFIG_STRING, "x # y", 0, 0, NULL, false, "quoted"},
    {NULL, 0, NULL, 0, 0, NULL, false, NULL},
};

static char *capture(void (*fn)(FILE *)) {
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    assert_non_null(out);
    fn(out);
    fclose(out);
    return buf;
}

static void example(FILE *out) { config_doc_example(keys, "prog", "PROG_", "# extra\n#kafka.x = 1\n", out); }
static void man(FILE *out) { config_doc_man_keys(keys, "PROG_", out); }

static void test_example(void **state) {
    (void)state;
    char *t = capture(example);
    assert_non_null(strstr(t, "# prog.conf - an example configuration of prog"));
    assert_non_null(strstr(t, "\n# what a.name is\n# string; environment PROG_A_NAME\n#a.name = \"\"\n"));
    assert_non_null(strstr(t, "# integer from 1 to 10; environment PROG_A_COUNT\n#a.count = 5\n"));
    assert_non_null(strstr(t, "# one of x, y or z; environment PROG_A_MODE\n#a.mode = x\n"));
    assert_non_null(strstr(t, "# true or false; environment PROG_A_ON\n#a.on = true\n"));
    assert_non_null(strstr(t, "#a.hash = \"x # y\"\n"));
    assert_non_null(strstr(t, "(secret: never printed)"));
    assert_non_null(strstr(t, "\n# extra\n#kafka.x = 1\n"));
    for (char *line = t; *line;) { /* every comment line within 92 columns */
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl - line <= 92);
        line = nl + 1;
    }
    free(t);
}

static void test_man(void **state) {
    (void)state;
    char *t = capture(man);
    assert_non_null(strstr(t, ".TP\n.B a.name\nstring, default empty; environment \\fBPROG_A_NAME\\fR.\n.br\nwhat "
                              "a.name is\n"));
    assert_non_null(strstr(t, ".B a.count\ninteger from 1 to 10, default \\fB5\\fR;"));
    assert_non_null(strstr(t, "a \\e backslash"));     /* roff's escape character, escaped */
    assert_non_null(strstr(t, "default \\fB\\-\\fR")); /* '-' as a hyphen-minus */
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_man),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
