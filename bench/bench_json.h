/* A streaming JSON writer for the bench reports (RFC 8259).
 *
 * Calls nest objects and arrays up to BENCH_JSON_DEPTH deep and place the
 * commas. Inside an object every value is preceded by bench_json_key.
 * Errors of the stream are left to the caller: check ferror(out) or the
 * result of fclose after the last call. */
#ifndef RINGRELAY_BENCH_JSON_H
#define RINGRELAY_BENCH_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_JSON_DEPTH 16

struct bench_json {
    FILE *out;
    unsigned depth;
    bool has_items[BENCH_JSON_DEPTH]; /* a value was written at depth */
    bool after_key;                   /* a key waits for its value */
};

void bench_json_init(struct bench_json *json, FILE *out);

void bench_json_object_begin(struct bench_json *json);
void bench_json_object_end(struct bench_json *json);
void bench_json_array_begin(struct bench_json *json);
void bench_json_array_end(struct bench_json *json);

void bench_json_key(struct bench_json *json, const char *key);

/* bench_json_string writes text with quotes, backslashes and control
 * characters escaped; other bytes pass unchanged. */
void bench_json_string(struct bench_json *json, const char *text);
void bench_json_u64(struct bench_json *json, uint64_t value);

/* bench_json_double writes value with up to 6 significant decimals, or
 * null when it is not finite (JSON has no NaN or infinity). */
void bench_json_double(struct bench_json *json, double value);
void bench_json_bool(struct bench_json *json, bool value);

/* Shorthands for a key followed by its value. */
void bench_json_key_string(struct bench_json *json, const char *key,
                           const char *text);
void bench_json_key_u64(struct bench_json *json, const char *key,
                        uint64_t value);
void bench_json_key_double(struct bench_json *json, const char *key,
                           double value);

#endif
