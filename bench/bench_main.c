/* ringrelay-bench: benchmark harness for ringrelay and other SMTP
 * servers. The first argument selects the subcommand. */
#include <stdio.h>
#include <string.h>

#include "bench/blast.h"
#include "bench/run.h"
#include "bench/sink.h"

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: ringrelay-bench COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  blast   send messages to an SMTP server and report the "
            "rate\n"
            "  sink    accept messages over SMTP, count and optionally "
            "store them\n"
            "  run     start a sink and ringrelay, drive them with blast "
            "and report\n"
            "\n"
            "Run \"ringrelay-bench COMMAND --help\" for the options of a "
            "command.\n");
}

int main(int argc, char **argv)
{
    const char *command;

    if (argc < 2) {
        bench_usage(stderr);
        return 2;
    }
    command = argv[1];
    if (strcmp(command, "blast") == 0) {
        return blast_main(argc - 1, argv + 1);
    }
    if (strcmp(command, "sink") == 0) {
        return sink_main(argc - 1, argv + 1);
    }
    if (strcmp(command, "run") == 0) {
        return run_main(argc - 1, argv + 1);
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0
        || strcmp(command, "help") == 0) {
        bench_usage(stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0) {
        printf("ringrelay-bench %s\n", RINGRELAY_VERSION);
        return 0;
    }
    fprintf(stderr, "ringrelay-bench: unknown command \"%s\"\n\n", command);
    bench_usage(stderr);
    return 2;
}
