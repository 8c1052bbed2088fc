/* Message files of the sink's --store DIR.
 *
 * Each accepted message becomes one file DIR/<nnnnnnnnnnnn>.msg (12
 * digits), numbered from one past the highest number already in DIR.
 * The file holds the envelope as "MAIL FROM:<sender>\r\n" and one
 * "RCPT TO:<recipient>\r\n" per recipient, for a message received over
 * TLS a line "TLS: <version> <cipher>\r\n" such as
 * "TLS: TLSv1.3 TLS_AES_128_GCM_SHA256", an empty line "\r\n", then
 * the message content with the SMTP dot-stuffing undone and line endings
 * exactly as received. A BINARYMIME message (RFC 3030) has no
 * dot-stuffing, so its content is kept byte for byte. A file is written
 * under a temporary name and renamed into place, so readers never see a
 * partial message. Two sinks must not share one DIR, because their
 * numbers would collide. */
#ifndef RINGRELAY_BENCH_SINK_STORE_H
#define RINGRELAY_BENCH_SINK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sink_message: one message being received, already in the file format.
 * It grows up to max_len bytes. */
struct sink_message {
    char *data;
    size_t len;
    size_t cap;
    size_t max_len;
    bool line_start; /* the next body byte starts a line */
    bool raw;        /* BINARYMIME body: kept as received; the caller sets
                      * it after sink_message_add_mail() */
};

void sink_message_init(struct sink_message *message, size_t max_len);
void sink_message_cleanup(struct sink_message *message);

/* sink_message_clear drops the envelope and content, keeping memory. */
void sink_message_clear(struct sink_message *message);

/* sink_message_add_mail starts a new envelope with sender (an address
 * without brackets, "" for the null path). The add functions return 0,
 * or -1 when the message would pass max_len or memory ran out. */
int sink_message_add_mail(struct sink_message *message, const char *sender);
int sink_message_add_rcpt(struct sink_message *message,
                          const char *recipient);

/* sink_message_add_tls adds the "TLS: VERSION CIPHER" envelope line. */
int sink_message_add_tls(struct sink_message *message, const char *version,
                         const char *cipher);

/* sink_message_begin_body ends the envelope with the empty line. */
int sink_message_begin_body(struct sink_message *message);

/* sink_message_add_body appends body bytes in wire form (dot-stuffed,
 * without the final ".\r\n") and removes the stuffing dot that starts a
 * line, or with raw set appends them unchanged. Chunks may split lines
 * anywhere. */
int sink_message_add_body(struct sink_message *message, const char *data,
                          size_t len);

struct sink_store;

/* sink_store_file: a message written under its temporary name. */
struct sink_store_file {
    int fd;             /* open until commit or discard; -1 after */
    char tmp_name[64];  /* relative to the store directory */
};

/* sink_store_open creates dir when it is missing (its parent must exist),
 * opens it and checks that a file can be created in it. with_fsync makes
 * callers fsync each file before sink_store_commit(). Prints the failure
 * to stderr. Returns 0 or -errno. */
int sink_store_open(const char *dir, bool with_fsync,
                    struct sink_store **out);

/* sink_store_free closes the store; NULL is accepted. */
void sink_store_free(struct sink_store *store);

bool sink_store_with_fsync(const struct sink_store *store);

const char *sink_store_dir(const struct sink_store *store);

/* sink_store_write writes message to a new temporary file and leaves it
 * open in file->fd for an fsync. Returns 0 or -errno; on failure nothing
 * is left behind. */
int sink_store_write(struct sink_store *store,
                     const struct sink_message *message,
                     struct sink_store_file *file);

/* sink_store_commit closes file and renames it to its numbered name,
 * stored in *number. Returns 0 or -errno; on failure the temporary file
 * is removed. */
int sink_store_commit(struct sink_store *store, struct sink_store_file *file,
                      uint64_t *number);

/* sink_store_discard closes and removes a file not committed. */
void sink_store_discard(struct sink_store *store,
                        struct sink_store_file *file);

#endif
