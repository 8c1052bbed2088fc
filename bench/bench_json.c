#include "bench/bench_json.h"

#include <inttypes.h>
#include <math.h>

void bench_json_init(struct bench_json *json, FILE *out)
{
    json->out = out;
    json->depth = 0;
    json->has_items[0] = false;
    json->after_key = false;
}

/* Write the comma that separates this value from the one before it,
 * unless the value follows its key. */
static void json_separate(struct bench_json *json)
{
    if (json->after_key) {
        json->after_key = false;
        return;
    }
    if (json->has_items[json->depth]) {
        fputc(',', json->out);
    }
    json->has_items[json->depth] = true;
}

static void json_open(struct bench_json *json, char bracket)
{
    json_separate(json);
    fputc(bracket, json->out);
    if (json->depth + 1 < BENCH_JSON_DEPTH) {
        json->depth++;
    }
    json->has_items[json->depth] = false;
}

static void json_close(struct bench_json *json, char bracket)
{
    fputc(bracket, json->out);
    if (json->depth > 0) {
        json->depth--;
    }
    if (json->depth == 0) {
        fputc('\n', json->out);
    }
}

void bench_json_object_begin(struct bench_json *json)
{
    json_open(json, '{');
}

void bench_json_object_end(struct bench_json *json)
{
    json_close(json, '}');
}

void bench_json_array_begin(struct bench_json *json)
{
    json_open(json, '[');
}

void bench_json_array_end(struct bench_json *json)
{
    json_close(json, ']');
}

static void json_quote(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\') {
            fputc('\\', out);
            fputc(*c, out);
        } else if (*c < 0x20) {
            fprintf(out, "\\u%04x", *c);
        } else {
            fputc(*c, out);
        }
    }
    fputc('"', out);
}

void bench_json_key(struct bench_json *json, const char *key)
{
    json_separate(json);
    json_quote(json->out, key);
    fputc(':', json->out);
    json->after_key = true;
}

void bench_json_string(struct bench_json *json, const char *text)
{
    json_separate(json);
    json_quote(json->out, text);
}

void bench_json_u64(struct bench_json *json, uint64_t value)
{
    json_separate(json);
    fprintf(json->out, "%" PRIu64, value);
}

void bench_json_double(struct bench_json *json, double value)
{
    json_separate(json);
    if (!isfinite(value)) {
        fputs("null", json->out);
        return;
    }
    fprintf(json->out, "%.6g", value);
}

void bench_json_bool(struct bench_json *json, bool value)
{
    json_separate(json);
    fputs(value ? "true" : "false", json->out);
}

void bench_json_key_string(struct bench_json *json, const char *key,
                           const char *text)
{
    bench_json_key(json, key);
    bench_json_string(json, text);
}

void bench_json_key_u64(struct bench_json *json, const char *key,
                        uint64_t value)
{
    bench_json_key(json, key);
    bench_json_u64(json, value);
}

void bench_json_key_double(struct bench_json *json, const char *key,
                           double value)
{
    bench_json_key(json, key);
    bench_json_double(json, value);
}
