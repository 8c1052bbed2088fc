#include "bench/run_child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_stats.h"

/* How often a wait polls the child: short against the deadlines (seconds)
 * and cheap (one wait4 call). */
#define RUN_CHILD_POLL_NS 10000000L

/* Print why the child could not start, then exit with 126 as a shell
 * does for a command it cannot run. The run process has one thread, so
 * stdio and strerror are safe to call here after fork. */
static void run_child_fail(const char *what, const char *path)
{
    dprintf(STDERR_FILENO, "run: %s %s failed: %s\n", what, path,
            strerror(errno));
    _exit(126);
}

/* Point target_fd at path, created or truncated; NULL leaves it. */
static void run_child_redirect(const char *path, int target_fd)
{
    int fd;

    if (path == NULL) {
        return;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, target_fd) < 0) {
        run_child_fail("opening the log", path);
    }
}

/* Runs in the forked child; never returns. */
static void run_child_exec(char *const argv[], const char *stdout_path,
                           const char *stderr_path, pid_t parent)
{
    int null_fd;

    /* SIGTERM when the run process dies, and check that it has not died
     * already between fork and prctl. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        run_child_fail("setting the parent-death signal for", argv[0]);
    }
    if (getppid() != parent) {
        _exit(126);
    }
    null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0) {
        run_child_fail("redirecting standard input of", argv[0]);
    }
    run_child_redirect(stdout_path, STDOUT_FILENO);
    if (stderr_path != NULL && stdout_path != NULL
        && strcmp(stderr_path, stdout_path) == 0) {
        if (dup2(STDOUT_FILENO, STDERR_FILENO) < 0) {
            run_child_fail("opening the log", stderr_path);
        }
    } else {
        run_child_redirect(stderr_path, STDERR_FILENO);
    }
    execv(argv[0], argv);
    run_child_fail("executing", argv[0]);
}

int run_child_start(struct run_child *child, const char *name,
                    char *const argv[], const char *stdout_path,
                    const char *stderr_path)
{
    pid_t parent = getpid();
    pid_t pid;

    *child = (struct run_child){.name = name};
    /* Output buffered now would be written twice, once by the child. */
    if (fflush(stdout) != 0 || fflush(stderr) != 0) {
        fprintf(stderr, "run: flushing output failed: %s\n",
                strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "run: starting %s (%s) failed: fork: %s\n", name,
                argv[0], strerror(errno));
        return -1;
    }
    if (pid == 0) {
        run_child_exec(argv, stdout_path, stderr_path, parent);
    }
    child->pid = pid;
    return 0;
}

static void run_child_sleep_poll(void)
{
    struct timespec pause = {.tv_sec = 0, .tv_nsec = RUN_CHILD_POLL_NS};

    /* An early wake-up by a signal only shortens one poll interval. */
    (void)nanosleep(&pause, NULL);
}

int run_child_poll(struct run_child *child)
{
    pid_t got;

    if (child->pid <= 0) {
        return 1;
    }
    got = wait4(child->pid, &child->status, WNOHANG, &child->usage);
    if (got < 0 && errno == EINTR) {
        return 0;
    }
    if (got < 0) {
        fprintf(stderr, "run: waiting for %s (PID %d) failed: %s\n",
                child->name, (int)child->pid, strerror(errno));
        return -1;
    }
    if (got == 0) {
        return 0;
    }
    child->pid = 0;
    return 1;
}

int run_child_wait(struct run_child *child, uint64_t deadline_ns,
                   const volatile int *interrupted)
{
    for (;;) {
        int rc = run_child_poll(child);

        if (rc != 0) {
            return rc;
        }
        if (bench_monotonic_ns() >= deadline_ns
            || (interrupted != NULL && *interrupted)) {
            return 0;
        }
        run_child_sleep_poll();
    }
}

int run_child_stop(struct run_child *child, unsigned grace_ms)
{
    uint64_t deadline;
    int rc;

    if (child->pid <= 0) {
        return 0;
    }
    if (kill(child->pid, SIGTERM) != 0 && errno != ESRCH) {
        fprintf(stderr, "run: sending SIGTERM to %s (PID %d) failed: %s\n",
                child->name, (int)child->pid, strerror(errno));
    }
    deadline = bench_monotonic_ns() + (uint64_t)grace_ms * 1000000u;
    rc = run_child_wait(child, deadline, NULL);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    fprintf(stderr, "run: %s (PID %d) still runs %u ms after SIGTERM, "
            "sending SIGKILL\n", child->name, (int)child->pid, grace_ms);
    if (kill(child->pid, SIGKILL) != 0 && errno != ESRCH) {
        fprintf(stderr, "run: sending SIGKILL to %s (PID %d) failed: %s\n",
                child->name, (int)child->pid, strerror(errno));
        return -1;
    }
    /* SIGKILL cannot be caught, so a blocking wait ends promptly. */
    while (wait4(child->pid, &child->status, 0, &child->usage) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "run: waiting for %s (PID %d) failed: %s\n",
                    child->name, (int)child->pid, strerror(errno));
            return -1;
        }
    }
    child->pid = 0;
    return 0;
}

bool run_child_exited_ok(const struct run_child *child)
{
    return child->pid == 0 && WIFEXITED(child->status)
           && WEXITSTATUS(child->status) == 0;
}

double run_child_cpu_seconds(const struct run_child *child)
{
    const struct timeval *user = &child->usage.ru_utime;
    const struct timeval *system = &child->usage.ru_stime;

    return (double)(user->tv_sec + system->tv_sec)
           + (double)(user->tv_usec + system->tv_usec) / 1e6;
}

const char *run_child_describe_status(const struct run_child *child,
                                      char *buf, size_t size)
{
    if (WIFEXITED(child->status)) {
        snprintf(buf, size, "exit status %d", WEXITSTATUS(child->status));
    } else if (WIFSIGNALED(child->status)) {
        snprintf(buf, size, "killed by %s",
                 strsignal(WTERMSIG(child->status)));
    } else {
        snprintf(buf, size, "wait status %d", child->status);
    }
    return buf;
}
