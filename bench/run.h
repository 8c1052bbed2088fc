/* ringrelay-bench run: starts a sink and a relay, drives the relay with
 * blast and reports end-to-end throughput, latency, loss and the relay's
 * cost. */
#ifndef RINGRELAY_BENCH_RUN_H
#define RINGRELAY_BENCH_RUN_H

/* run_main is the subcommand's entry point; argv[0] is "run". Returns
 * the exit status: 0 when every message was accepted and delivered once,
 * 1 otherwise, 2 on a usage error. */
int run_main(int argc, char **argv);

#endif
