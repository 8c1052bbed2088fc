/* Command-line value parsing shared by the bench subcommands. */
#ifndef RINGRELAY_BENCH_ARGS_H
#define RINGRELAY_BENCH_ARGS_H

#include <stdint.h>

/* bench_parse_u64 parses a decimal integer in [min, max] for the option
 * named option of subcommand command. On a bad value it prints an error
 * naming the option and the accepted range to stderr. Returns 0 or -1. */
int bench_parse_u64(const char *command, const char *option,
                    const char *text, uint64_t min, uint64_t max,
                    uint64_t *out);

/* bench_check_output_path checks at start that the file path given to
 * --option of subcommand command can be written, so that a report
 * written at exit does not fail after the whole run. A file that the
 * check creates is removed again. An existing file is only tested with
 * access(), because opening a FIFO for writing would block. On failure
 * it prints the path and the errno text to stderr. Returns 0 or -1. */
int bench_check_output_path(const char *command, const char *option,
                            const char *path);

#endif
