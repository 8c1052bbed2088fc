#include "bench/blast_message.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/blast_text.h"

/* Body line length in bytes, CRLF included, within the 78 characters
 * RFC 5322 2.1.1 recommends. */
#define BLAST_LINE_LEN 80

/* Files larger than this are refused: the bench sends test messages, and
 * every body stays in memory for the whole run. */
#define BLAST_BODY_FILE_MAX (64u << 20)

/* Fill body[0..len) with CRLF-terminated lines of letters. len must not
 * be 1, because a line needs at least its CRLF. */
static void blast_fill_body(char *body, size_t len)
{
    size_t pos = 0;
    unsigned line = 0;

    while (pos < len) {
        size_t left = len - pos;
        size_t line_len = left < BLAST_LINE_LEN ? left : BLAST_LINE_LEN;

        /* Never leave a single byte for the last line. */
        if (left - line_len == 1) {
            line_len--;
        }
        for (size_t i = 0; i + 2 < line_len; i++) {
            body[pos + i] = (char)('a' + (line + i) % 26);
        }
        body[pos + line_len - 2] = '\r';
        body[pos + line_len - 1] = '\n';
        pos += line_len;
        line++;
    }
}

int blast_message_init_synthetic(struct blast_message *message,
                                 const char *domain, size_t size,
                                 const struct blast_header_fields *sample)
{
    struct blast_body *body;
    char header[BLAST_HEADER_MAX];
    size_t header_len;

    *message = (struct blast_message){.domain = domain};
    body = calloc(1, sizeof(*body));
    if (body == NULL) {
        return -1;
    }
    message->bodies = body;
    message->body_count = 1;

    /* Header lengths differ by a few bytes between messages (digits of
     * the sequence number and addresses), so one sample header sets the
     * body length for all. */
    header_len = blast_message_header(message, body, sample, header);
    if (size > header_len) {
        body->len = size - header_len;
    }
    if (body->len == 1) {
        body->len = 2;
    }
    body->data = malloc(body->len + 1);
    if (body->data == NULL) {
        return -1;
    }
    blast_fill_body(body->data, body->len);
    return 0;
}

int blast_body_to_wire(const char *text, size_t len, char **out,
                       size_t *out_len)
{
    /* Worst case: every byte is a bare CR or LF, or a '.' that starts a
     * line, and so doubles; plus a final CRLF. */
    char *wire = malloc(2 * len + 2);
    size_t pos = 0;
    bool line_start = true;

    if (wire == NULL) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (c == '\r' || c == '\n') {
            wire[pos++] = '\r';
            wire[pos++] = '\n';
            if (c == '\r' && i + 1 < len && text[i + 1] == '\n') {
                i++;
            }
            line_start = true;
            continue;
        }
        if (c == '.' && line_start) {
            wire[pos++] = '.';
        }
        wire[pos++] = c;
        line_start = false;
    }
    if (!line_start) {
        wire[pos++] = '\r';
        wire[pos++] = '\n';
    }
    *out = wire;
    *out_len = pos;
    return 0;
}

/* Report whether text starts with a header field: a name of printable
 * characters other than ':' followed by ':' (RFC 5322 2.2). */
static bool blast_starts_with_field(const char *text, size_t len)
{
    size_t i = 0;

    while (i < len && text[i] > ' ' && text[i] < 127 && text[i] != ':') {
        i++;
    }
    return i > 0 && i < len && text[i] == ':';
}

/* Read all of path into a malloc'd buffer. Returns 0, or -1 with errno. */
static int blast_read_file(const char *path, char **out, size_t *out_len)
{
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        goto fail;
    }
    if (st.st_size > (off_t)BLAST_BODY_FILE_MAX) {
        errno = EFBIG;
        goto fail;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        goto fail;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, data + len, (size_t)st.st_size - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO; /* the file shrank while being read */
            }
            goto fail;
        }
        len += (size_t)n;
    }
    close(fd);
    *out = data;
    *out_len = len;
    return 0;

fail:
    free(data);
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static int blast_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the names of regular files in dir, sorted, into a malloc'd array
 * of malloc'd strings. Returns 0, or -1 with the reason in error. */
static int blast_list_files(const char *dir, char ***out, size_t *out_count,
                            char *error, size_t error_size)
{
    DIR *d = opendir(dir);
    struct dirent *entry;
    char **names = NULL;
    size_t count = 0;
    size_t cap = 0;

    if (d == NULL) {
        snprintf(error, error_size, "cannot open the directory: %s",
                 strerror(errno));
        return -1;
    }
    while ((entry = readdir(d)) != NULL) {
        struct stat st;

        if (entry->d_name[0] == '.') {
            continue;
        }
        /* stat follows symbolic links, so a link to a file counts. */
        if (fstatat(dirfd(d), entry->d_name, &st, 0) < 0) {
            snprintf(error, error_size, "cannot stat \"%s\": %s",
                     entry->d_name, strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;
        }
        if (count == cap) {
            size_t new_cap = cap == 0 ? 16 : cap * 2;
            char **grown = realloc(names, new_cap * sizeof(*names));

            if (grown == NULL) {
                goto oom;
            }
            names = grown;
            cap = new_cap;
        }
        names[count] = strdup(entry->d_name);
        if (names[count] == NULL) {
            goto oom;
        }
        count++;
    }
    closedir(d);
    if (count > 0) {
        qsort(names, count, sizeof(*names), blast_compare_names);
    }
    *out = names;
    *out_count = count;
    return 0;

oom:
    snprintf(error, error_size, "out of memory");
fail:
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    return -1;
}

/* Load file name of dir as body. Returns 0, or -1 with error. */
static int blast_load_body(struct blast_body *body, const char *dir,
                           const char *name, char *error, size_t error_size)
{
    char path[4096];
    char *text;
    size_t len;
    int rc;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name)
        >= (int)sizeof(path)) {
        snprintf(error, error_size, "path of \"%s\" too long", name);
        return -1;
    }
    if (blast_read_file(path, &text, &len) < 0) {
        snprintf(error, error_size, "cannot read \"%s\": %s", name,
                 strerror(errno));
        return -1;
    }
    rc = blast_body_to_wire(text, len, &body->data, &body->len);
    body->has_header = blast_starts_with_field(text, len);
    free(text);
    if (rc < 0) {
        snprintf(error, error_size, "out of memory loading \"%s\"", name);
        return -1;
    }
    return 0;
}

int blast_message_init_dir(struct blast_message *message, const char *dir,
                           size_t *skipped, char *error, size_t error_size)
{
    char **names = NULL;
    size_t count = 0;
    int rc = -1;

    *message = (struct blast_message){.from_files = true};
    *skipped = 0;
    if (blast_list_files(dir, &names, &count, error, error_size) < 0) {
        return -1;
    }
    if (count == 0) {
        snprintf(error, error_size, "it holds no regular files");
        goto out;
    }
    message->bodies = calloc(count, sizeof(*message->bodies));
    if (message->bodies == NULL) {
        snprintf(error, error_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        struct blast_body *body = &message->bodies[message->body_count];

        if (blast_load_body(body, dir, names[i], error, error_size) < 0) {
            goto out;
        }
        /* Without a header the file is no message, and the server would
         * get it as the body of one with only blast's fields. */
        if (!body->has_header) {
            free(body->data);
            *body = (struct blast_body){0};
            (*skipped)++;
            continue;
        }
        message->body_count++;
    }
    if (message->body_count == 0) {
        snprintf(error, error_size, "none of its regular files starts "
                 "with a header line (Name: value)");
        goto out;
    }
    rc = 0;

out:
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

void blast_message_cleanup(struct blast_message *message)
{
    for (size_t i = 0; i < message->body_count; i++) {
        free(message->bodies[i].data);
    }
    free(message->bodies);
    message->bodies = NULL;
    message->body_count = 0;
}

const struct blast_body *blast_message_body(const struct blast_message *m,
                                            uint64_t seq)
{
    /* Most runs have one body; a division per message is then saved. */
    return m->body_count == 1 ? &m->bodies[0]
                              : &m->bodies[(seq - 1) % m->body_count];
}

/* The Date: value of second seconds since the epoch, formatted once a
 * second rather than for every message. */
static const char *blast_message_date(struct blast_message *message,
                                      uint64_t second)
{
    time_t t = (time_t)second;
    struct tm tm;

    if (message->date_second != second || message->date[0] == '\0') {
        message->date_second = second;
        if (gmtime_r(&t, &tm) == NULL
            || strftime(message->date, sizeof(message->date),
                        "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0) {
            snprintf(message->date, sizeof(message->date), "%s",
                     "Thu, 01 Jan 1970 00:00:00 +0000");
        }
    }
    return message->date;
}

size_t blast_message_header(struct blast_message *message,
                            const struct blast_body *body,
                            const struct blast_header_fields *fields,
                            char *buf)
{
    struct blast_text t;

    blast_text_init(&t, buf, BLAST_HEADER_MAX);
    if (!message->from_files) {
        blast_text_put_str(&t, "From: <");
        blast_text_put_str(&t, fields->from);
        blast_text_put_str(&t, ">\r\nTo: <");
        blast_text_put_str(&t, fields->to);
        blast_text_put_str(&t, ">\r\nSubject: ringrelay-bench blast "
                               "message ");
        blast_text_put_u64(&t, fields->seq);
        blast_text_put_str(&t, "\r\nDate: ");
        blast_text_put_str(&t, blast_message_date(message,
                                                  fields->sent_us / 1000000u));
        blast_text_put_str(&t, "\r\nMessage-ID: <");
        blast_text_put_u64(&t, fields->seq);
        blast_text_put(&t, ".", 1);
        blast_text_put_u64(&t, fields->sent_us);
        blast_text_put(&t, "@", 1);
        blast_text_put_str(&t, message->domain);
        blast_text_put_str(&t, ">\r\n");
    }
    blast_text_put_str(&t, "X-Blast-Seq: ");
    blast_text_put_u64(&t, fields->seq);
    blast_text_put_str(&t, "\r\nX-Blast-Sent: ");
    blast_text_put_u64(&t, fields->sent_us);
    blast_text_put_str(&t, "\r\nX-Blast-Rcpts: ");
    blast_text_put_u64(&t, fields->rcpts);
    blast_text_put_str(&t, "\r\n");
    /* A synthetic header, or a file without one, ends here; a file's own
     * header continues ours. */
    if (!message->from_files || !body->has_header) {
        blast_text_put_str(&t, "\r\n");
    }

    /* Callers limit addresses and domain to SMTP sizes, so the block
     * fits; on overflow the text is cut short rather than overrun. */
    blast_text_end(&t);
    return t.len;
}
