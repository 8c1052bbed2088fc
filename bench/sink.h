/* ringrelay-bench sink: an SMTP server that accepts every message, counts
 * it and optionally stores it as a file. */
#ifndef RINGRELAY_BENCH_SINK_H
#define RINGRELAY_BENCH_SINK_H

/* sink_main runs the sink subcommand; argv[0] is "sink". Returns the
 * process exit status: 0 after SIGINT, SIGTERM or --max-seconds, 1 on a
 * runtime failure, 2 on a usage error. */
int sink_main(int argc, char **argv);

#endif
