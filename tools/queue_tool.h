/* ringrelay-queue: shared parts of the command-line tool. */
#ifndef RINGRELAY_TOOLS_QUEUE_TOOL_H
#define RINGRELAY_TOOLS_QUEUE_TOOL_H

#include <stdbool.h>

/* Exit statuses. */
#define QUEUE_TOOL_OK 0
#define QUEUE_TOOL_ERROR 1
#define QUEUE_TOOL_USAGE 2

/* Returned by queue_tool_ask_daemon() when nothing accepts connections
 * on the control socket. */
#define QUEUE_TOOL_NO_DAEMON (-1)

struct queue_tool {
    const char *queue_dir;
    bool json;
    const char *command;
    const char *arg;             /* NULL when none */
};

/* queue_tool_fail prints message as an error, a JSON object on stdout
 * with --json and a line on stderr otherwise, and returns status. */
int queue_tool_fail(const struct queue_tool *tool, int status,
                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* queue_tool_ask_daemon sends the request to the daemon's control socket
 * and prints its reply. Returns an exit status, or QUEUE_TOOL_NO_DAEMON
 * when nothing listens on the socket. */
int queue_tool_ask_daemon(const struct queue_tool *tool);

/* queue_tool_check_dir checks that the queue directory exists, can be
 * read and has a journal. Returns QUEUE_TOOL_OK, or an exit status after
 * printing why not. */
int queue_tool_check_dir(const struct queue_tool *tool);

/* queue_tool_read_only prints the list, show or stats report from the
 * queue directory of a stopped daemon. Returns an exit status. */
int queue_tool_read_only(const struct queue_tool *tool);

#endif
