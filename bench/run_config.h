/* The working directory of `ringrelay-bench run`: a fresh temporary
 * directory that holds the relay's configuration and queue, the stats
 * files and the children's logs. */
#ifndef RINGRELAY_BENCH_RUN_CONFIG_H
#define RINGRELAY_BENCH_RUN_CONFIG_H

#include <stddef.h>

#define RUN_PATH_MAX 4096

/* run_workdir: the directory and the paths of the files in it. */
struct run_workdir {
    char dir[RUN_PATH_MAX];
    char relay_config[RUN_PATH_MAX];
    char queue_dir[RUN_PATH_MAX];
    char blast_stats[RUN_PATH_MAX];
    char blast_log[RUN_PATH_MAX];   /* blast's stderr, also copied to ours */
    char sink_stats[RUN_PATH_MAX];
    char sink_log[RUN_PATH_MAX];
    char relay_log[RUN_PATH_MAX];
};

/* run_workdir_create makes a new directory under $TMPDIR (or /tmp) and
 * fills in the paths; no file is created yet. Returns 0, or -1 after
 * printing why. */
int run_workdir_create(struct run_workdir *workdir);

/* run_workdir_remove deletes the directory and everything in it.
 * Returns 0, or -1 after printing why. */
int run_workdir_remove(const struct run_workdir *workdir);

/* run_relay_settings: what the generated relay configuration sets. */
struct run_relay_settings {
    const char *listen;     /* HOST:PORT the relay accepts SMTP on */
    const char *smarthost;  /* HOST:PORT of the sink */
    const char *resolver;   /* IP:PORT; non-NULL: MX lookups through it,
                             * loopback MX allowed, and no smarthost */
    const char *durability; /* fsync, batch or none; NULL: relay default */
};

/* run_config_format writes the UCL configuration for settings and
 * queue_dir into buf. Returns 0, or -1 when a value contains a
 * character that the UCL string would need escaped past what is handled
 * (a control character) or buf is too small. */
int run_config_format(const struct run_relay_settings *settings,
                      const char *queue_dir, char *buf, size_t size);

/* run_config_write writes the configuration to workdir->relay_config.
 * Returns 0, or -1 after printing why. */
int run_config_write(const struct run_workdir *workdir,
                     const struct run_relay_settings *settings);

#endif
