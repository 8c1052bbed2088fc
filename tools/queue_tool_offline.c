/* ringrelay-queue's read-only reports on the queue of a stopped daemon. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/control_proto.h"
#include "core/log.h"
#include "core/queue.h"
#include "core/queue_journal.h"
#include "core/queue_report.h"
#include "tools/queue_tool.h"

/* A read-only queue makes no ready() calls; this is only a safe value. */
static void queue_tool_ignore_ready(void *arg, struct queue_msg *msg)
{
    (void)arg;
    (void)msg;
}

static int queue_tool_report(const struct queue_tool *tool,
                             struct queue *queue)
{
    enum queue_report_format format =
        tool->json ? QUEUE_REPORT_JSON : QUEUE_REPORT_TEXT;
    int rc;

    if (strcmp(tool->command, "list") == 0) {
        rc = queue_report_list(queue, stdout, format);
    } else if (strcmp(tool->command, "stats") == 0) {
        rc = queue_report_stats(queue, stdout, format);
    } else if (!control_id_valid(tool->arg)) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "invalid queue ID "
                               "\"%s\": expected %d hex digits", tool->arg,
                               QUEUE_ID_LEN);
    } else {
        rc = queue_report_show(queue, tool->arg, stdout, format);
        if (rc < 0 && errno == ENOENT) {
            return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "queue ID %s not "
                                   "found", tool->arg);
        }
    }
    if (rc < 0 || fflush(stdout) != 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s failed: %s",
                               tool->command, strerror(errno));
    }
    return QUEUE_TOOL_OK;
}

int queue_tool_check_dir(const struct queue_tool *tool)
{
    char journal[PATH_MAX];
    struct stat st;

    if (stat(tool->queue_dir, &st) < 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "queue directory %s "
                               "not found: %s", tool->queue_dir,
                               strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "queue directory %s "
                               "is not a directory", tool->queue_dir);
    }
    if (access(tool->queue_dir, X_OK) < 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "cannot open queue "
                               "directory %s: %s%s", tool->queue_dir,
                               strerror(errno), errno == EACCES ?
                               " (run as the daemon's user or root)" : "");
    }

    /* Every queue has its journal from its first open on, so a directory
     * without one is a mistyped path rather than an empty queue. A
     * journal.new alone is a journal that the daemon adopts at start. */
    snprintf(journal, sizeof(journal), "%s/%s", tool->queue_dir,
             QUEUE_JOURNAL_NAME);
    if (stat(journal, &st) < 0 && errno == ENOENT) {
        snprintf(journal, sizeof(journal), "%s/%s", tool->queue_dir,
                 QUEUE_JOURNAL_NEW_NAME);
    }
    if (stat(journal, &st) < 0 && errno == ENOENT) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s is not a queue "
                               "directory: it has no %s file",
                               tool->queue_dir, QUEUE_JOURNAL_NAME);
    }
    return QUEUE_TOOL_OK;
}

int queue_tool_read_only(const struct queue_tool *tool)
{
    struct queue_options opts = {
        .dir = tool->queue_dir,
        .durability = QUEUE_DURABILITY_FSYNC,
        .read_only = true,
    };
    struct queue *queue = NULL;
    int status;

    /* Recovery logs at info level; only its warnings matter here. */
    log_set_level(LOG_LEVEL_WARNING);
    if (queue_open(&queue, NULL, &opts, queue_tool_ignore_ready, NULL) < 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "opening the queue "
                               "in %s read-only failed: %s", tool->queue_dir,
                               strerror(errno));
    }
    status = queue_tool_report(tool, queue);
    queue_close(queue);
    return status;
}
