#include "bench/blast_signal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int blast_signal_arm(struct blast_signal *sig);

const char *blast_signal_name(int signo)
{
    switch (signo) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "signal";
    }
}

static void blast_signal_done(struct reactor_op *op, int result)
{
    struct blast_signal *sig = op->owner;
    int signo = (int)sig->info.ssi_signo;

    if (result == -ECANCELED) {
        return;
    }
    if (result < 0) {
        fprintf(stderr, "blast: reading signals failed: %s; stopping the "
                        "run\n", strerror(-result));
        blast_run_interrupt(sig->run, 0);
        return;
    }
    if (++sig->received > 1) {
        fprintf(stderr, "blast: %s again: exiting without a report\n",
                blast_signal_name(signo));
        _exit(128 + signo);
    }
    if (sig->run->hold) {
        fprintf(stderr, "blast: %s: ending the hold, waiting up to %d s "
                        "for the QUIT replies; send it again to exit at "
                        "once\n",
                blast_signal_name(signo), BLAST_RUN_DRAIN_S);
    } else {
        fprintf(stderr, "blast: %s: starting no more messages, waiting up "
                        "to %d s for those in flight; send it again to exit "
                        "at once\n",
                blast_signal_name(signo), BLAST_RUN_DRAIN_S);
    }
    blast_run_interrupt(sig->run, signo);
    result = blast_signal_arm(sig);
    if (result < 0) {
        fprintf(stderr, "blast: reading signals failed: %s\n",
                strerror(-result));
    }
}

static int blast_signal_arm(struct blast_signal *sig)
{
    return reactor_read(sig->run->reactor, &sig->op, sig->fd, &sig->info,
                        sizeof(sig->info));
}

int blast_signal_open(struct blast_signal *sig, struct blast_run *run)
{
    sigset_t mask;
    int rc;

    *sig = (struct blast_signal){.run = run, .fd = -1};
    sig->op = (struct reactor_op){.done = blast_signal_done, .owner = sig};
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    /* Blocked first, so that the default action cannot end blast. */
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        fprintf(stderr, "blast: blocking SIGINT and SIGTERM failed: %s\n",
                strerror(errno));
        return -1;
    }
    if (signal(SIGINT, SIG_DFL) == SIG_ERR
        || signal(SIGTERM, SIG_DFL) == SIG_ERR) {
        fprintf(stderr, "blast: resetting signal handling failed: %s\n",
                strerror(errno));
        return -1;
    }
    sig->fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sig->fd < 0) {
        fprintf(stderr, "blast: signalfd failed: %s\n", strerror(errno));
        return -1;
    }
    rc = blast_signal_arm(sig);
    if (rc < 0) {
        fprintf(stderr, "blast: reading signals failed: %s\n",
                strerror(-rc));
        return -1;
    }
    return 0;
}

void blast_signal_close(struct blast_signal *sig)
{
    if (sig->fd >= 0 && close(sig->fd) < 0) {
        fprintf(stderr, "blast: closing the signalfd failed: %s\n",
                strerror(errno));
    }
    sig->fd = -1;
}
