/* SIGINT and SIGTERM during a blast run, read through a signalfd in the
 * run's reactor. The first signal stops the run gently (see
 * blast_run_interrupt); a second one exits at once with 128 + its
 * number, without a report. */
#ifndef RINGRELAY_BENCH_BLAST_SIGNAL_H
#define RINGRELAY_BENCH_BLAST_SIGNAL_H

#include <sys/signalfd.h>

#include "bench/blast_run.h"
#include "core/reactor.h"

struct blast_signal {
    struct blast_run *run;
    int fd;                       /* signalfd, -1 when closed */
    struct reactor_op op;
    struct signalfd_siginfo info;
    unsigned received;
};

/* blast_signal_open blocks SIGINT and SIGTERM and starts reading them in
 * run's reactor. Their dispositions are reset to the default first,
 * because a shell that starts a command with & sets SIGINT to ignored,
 * and an ignored signal never reaches a signalfd. Returns 0, or -1
 * after printing why. */
int blast_signal_open(struct blast_signal *sig, struct blast_run *run);

/* blast_signal_name returns "SIGINT", "SIGTERM", or "signal" for any
 * other number. */
const char *blast_signal_name(int signo);

/* blast_signal_close closes the signalfd; call it after the reactor is
 * freed. The signals stay blocked, so one that arrives later waits
 * unseen until blast exits. */
void blast_signal_close(struct blast_signal *sig);

#endif
