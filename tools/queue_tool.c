/* ringrelay-queue: lists and changes the queue of a ringrelay daemon.
 *
 * Usage: ringrelay-queue [-c CONFIG | -q QUEUE_DIR] [--json] COMMAND [ARG]
 * Exit status: 0 on success, 1 on an error such as an unknown queue ID,
 * 2 on a usage error. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/control_proto.h"
#include "core/queue_report_escape.h"
#include "tools/queue_tool.h"

struct queue_tool_command {
    const char *name;
    int min_args;
    int max_args;
    bool needs_daemon;           /* changes the queue */
    bool takes_all;              /* accepts --all in place of an ID */
};

static const struct queue_tool_command queue_tool_commands[] = {
    {"list", 0, 0, false, false},
    {"show", 1, 1, false, false},
    {"stats", 0, 0, false, false},
    {"flush", 0, 1, true, false},
    {"hold", 1, 1, true, true},
    {"release", 1, 1, true, true},
    {"delete", 1, 1, true, true},
};

static void queue_tool_usage(FILE *out)
{
    fprintf(out,
            "usage: ringrelay-queue [-c CONFIG | -q QUEUE_DIR] [--json] "
            "COMMAND [ARG]\n"
            "  -c CONFIG     read queue_dir from the daemon's configuration "
            "file;\n"
            "                without -c and -q the default ./var/queue is "
            "used\n"
            "  -q QUEUE_DIR  use this queue directory\n"
            "  --json        print replies and errors as JSON; also "
            "accepted after\n"
            "                the command\n"
            "  --version     print the version and exit\n"
            "commands:\n"
            "  list          every message: queue ID, size, age, sender, "
            "recipients\n"
            "  show ID       envelope, headers and last error per "
            "recipient\n"
            "  stats         recipient counts by state and by destination\n"
            "  flush [ID]    retry deferred mail now, all or one message\n"
            "  hold ID       keep a message from delivery\n"
            "  hold --all    keep every message from delivery\n"
            "  release ID    deliver a held message again\n"
            "  release --all deliver every held message again\n"
            "  delete ID     remove a message without a bounce\n"
            "  delete --all  remove every message\n"
            "list, show and stats also read the queue of a stopped daemon; "
            "the other\n"
            "commands need the running daemon.\n");
}

int queue_tool_fail(const struct queue_tool *tool, int status,
                    const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (tool->json) {
        fputs("{\"error\": ", stdout);
        queue_report_json_str(stdout, message);
        fputs("}\n", stdout);
    } else {
        fprintf(stderr, "ringrelay-queue: %s\n", message);
    }
    return status;
}

/* queue_tool_bad_option reports an unknown option or one that lacks its
 * argument; word is the command-line word getopt stopped at. */
static int queue_tool_bad_option(const struct queue_tool *tool,
                                 const char *word)
{
    if (optopt != 0 && strchr("cq", optopt) != NULL) {
        return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "option -%c needs "
                               "an argument; see ringrelay-queue --help",
                               optopt);
    }
    return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "unknown option \"%s\"; "
                           "see ringrelay-queue --help", word);
}

static const struct queue_tool_command *queue_tool_find(const char *name)
{
    size_t count = sizeof(queue_tool_commands) /
                   sizeof(queue_tool_commands[0]);

    for (size_t i = 0; i < count; i++) {
        if (strcmp(queue_tool_commands[i].name, name) == 0) {
            return &queue_tool_commands[i];
        }
    }
    return NULL;
}

/* queue_tool_take_json removes "--json" from the words after the command,
 * where it is accepted too, sets tool->json for it, and returns the
 * number of words left, the command included. */
static int queue_tool_take_json(struct queue_tool *tool, int argc,
                                char **argv)
{
    int kept = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            tool->json = true;
        } else {
            argv[kept++] = argv[i];
        }
    }
    return kept;
}

/* queue_tool_check_args checks the command and its argument count;
 * returns QUEUE_TOOL_OK or the usage status after printing why. */
static int queue_tool_check_args(struct queue_tool *tool, int argc,
                                 char **argv,
                                 const struct queue_tool_command **out)
{
    const struct queue_tool_command *cmd;
    int count = argc - 1;

    if (argc < 1) {
        queue_tool_fail(tool, QUEUE_TOOL_USAGE, "missing command; see "
                        "ringrelay-queue --help");
        return QUEUE_TOOL_USAGE;
    }
    tool->command = argv[0];
    cmd = queue_tool_find(argv[0]);
    count = queue_tool_take_json(tool, argc, argv) - 1;
    if (cmd == NULL) {
        return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "unknown command "
                               "\"%s\"; see ringrelay-queue --help", argv[0]);
    }
    if (count < cmd->min_args) {
        return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "%s: missing "
                               "argument, expected %s", cmd->name,
                               cmd->takes_all ? "a queue ID or --all"
                                              : "a queue ID");
    }
    for (int i = 1; i <= count; i++) {
        if (argv[i][0] == '-' && !(cmd->takes_all &&
                                   strcmp(argv[i], "--all") == 0)) {
            return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "option \"%s\" "
                                   "must come before the command; see "
                                   "ringrelay-queue --help", argv[i]);
        }
    }
    if (count > cmd->max_args) {
        return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "%s: too many "
                               "arguments", cmd->name);
    }
    tool->arg = count > 0 ? argv[1] : NULL;
    if (tool->arg != NULL && !control_id_valid(tool->arg) &&
        !(cmd->takes_all && strcmp(tool->arg, "--all") == 0)) {
        return queue_tool_fail(tool, QUEUE_TOOL_USAGE, "%s: invalid queue "
                               "ID \"%s\": expected %d hex digits",
                               cmd->name, tool->arg, QUEUE_ID_LEN);
    }
    *out = cmd;
    return QUEUE_TOOL_OK;
}

/* queue_tool_load_config reads queue_dir the way the daemon does: the
 * file's value over the built-in default. */
static int queue_tool_load_config(struct queue_tool *tool,
                                  struct config *config, const char *path)
{
    char err[512];

    if (config_init(config) < 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "out of memory");
    }
    if (path != NULL && config_load(config, path, err, sizeof(err)) < 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s", err);
    }
    tool->queue_dir = config->queue_dir;
    return QUEUE_TOOL_OK;
}

static int queue_tool_run(struct queue_tool *tool,
                          const struct queue_tool_command *cmd)
{
    int status = queue_tool_check_dir(tool);

    if (status != QUEUE_TOOL_OK) {
        return status;
    }
    status = queue_tool_ask_daemon(tool);

    if (status != QUEUE_TOOL_NO_DAEMON) {
        return status;
    }
    if (cmd->needs_daemon) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s: the daemon is "
                               "not running (nothing listens on %s/control); "
                               "start it to change the queue", cmd->name,
                               tool->queue_dir);
    }
    return queue_tool_read_only(tool);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct queue_tool tool = {0};
    const struct queue_tool_command *cmd = NULL;
    const char *config_path = NULL;
    const char *queue_dir = NULL;
    struct config config;
    int status;
    int opt;

    /* Errors come as JSON when --json is anywhere among the words, even
     * after the command or before getopt reaches it. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            tool.json = true;
        }
    }

    /* "+" stops at the command, so "delete --all" keeps its argument. */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+c:q:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'q':
            queue_dir = optarg;
            break;
        case 'j':
            tool.json = true;
            break;
        case 'h':
            queue_tool_usage(stdout);
            return QUEUE_TOOL_OK;
        case 'V':
            printf("ringrelay-queue %s\n", RINGRELAY_VERSION);
            return QUEUE_TOOL_OK;
        default:
            return queue_tool_bad_option(&tool, argv[optind - 1]);
        }
    }
    if (config_path != NULL && queue_dir != NULL) {
        return queue_tool_fail(&tool, QUEUE_TOOL_USAGE, "-c and -q exclude "
                               "each other");
    }
    status = queue_tool_check_args(&tool, argc - optind, argv + optind, &cmd);
    if (status != QUEUE_TOOL_OK) {
        return status;
    }
    status = queue_tool_load_config(&tool, &config, config_path);
    if (status == QUEUE_TOOL_OK) {
        if (queue_dir != NULL) {
            tool.queue_dir = queue_dir;
        }
        status = queue_tool_run(&tool, cmd);
    }
    config_cleanup(&config);
    return status;
}
