/* A command line for option-parser tests: the program name and the
 * arguments as heap copies, because getopt permutes what it parses. */
#ifndef RINGRELAY_TESTS_UNIT_TEST_ARGV_H
#define RINGRELAY_TESTS_UNIT_TEST_ARGV_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TEST_ARGV_MAX 32

struct test_argv {
    int argc;
    char *argv[TEST_ARGV_MAX];  /* NULL after the last argument */
};

/* test_argv_build fills args with program followed by the arguments of
 * ap, up to a NULL one. */
static inline void test_argv_build(struct test_argv *args,
                                   const char *program, va_list ap)
{
    const char *arg;

    memset(args, 0, sizeof(*args));
    args->argv[args->argc++] = strdup(program);
    while ((arg = va_arg(ap, const char *)) != NULL) {
        cr_assert_lt(args->argc, TEST_ARGV_MAX - 1);
        args->argv[args->argc++] = strdup(arg);
    }
}

/* test_argv_free frees the copies that test_argv_build() made. */
static inline void test_argv_free(struct test_argv *args)
{
    for (int i = 0; i < TEST_ARGV_MAX; i++) {
        free(args->argv[i]);
    }
}

#endif
