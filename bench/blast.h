/* ringrelay-bench blast: an SMTP load generator, closed or open loop. */
#ifndef RINGRELAY_BENCH_BLAST_H
#define RINGRELAY_BENCH_BLAST_H

/* blast_main runs the blast subcommand; argv[0] is "blast". Returns the
 * process exit status: 0 when every message was accepted, 1 otherwise
 * (rejections, failures, timeout), 2 on a usage error. */
int blast_main(int argc, char **argv);

#endif
