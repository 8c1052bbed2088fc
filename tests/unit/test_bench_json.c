/* Output of the bench JSON writer, read back as text. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_json.h"

struct json_buffer {
    char *text;
    size_t len;
    FILE *out;
};

static void buffer_open(struct json_buffer *buffer, struct bench_json *json)
{
    buffer->text = NULL;
    buffer->len = 0;
    buffer->out = open_memstream(&buffer->text, &buffer->len);
    cr_assert_not_null(buffer->out, "open_memstream failed");
    bench_json_init(json, buffer->out);
}

static void buffer_close(struct json_buffer *buffer)
{
    cr_assert_eq(fclose(buffer->out), 0);
}

Test(bench_json, nested_object_and_array)
{
    struct json_buffer buffer;
    struct bench_json json;

    buffer_open(&buffer, &json);
    bench_json_object_begin(&json);
    bench_json_key_u64(&json, "messages", 42);
    bench_json_key(&json, "series");
    bench_json_array_begin(&json);
    for (unsigned i = 1; i <= 3; i++) {
        bench_json_object_begin(&json);
        bench_json_key_u64(&json, "t", i);
        bench_json_object_end(&json);
    }
    bench_json_array_end(&json);
    bench_json_key(&json, "empty");
    bench_json_array_begin(&json);
    bench_json_array_end(&json);
    bench_json_key(&json, "ok");
    bench_json_bool(&json, true);
    bench_json_object_end(&json);
    buffer_close(&buffer);

    cr_assert_str_eq(buffer.text,
                     "{\"messages\":42,\"series\":[{\"t\":1},{\"t\":2},"
                     "{\"t\":3}],\"empty\":[],\"ok\":true}\n");
    free(buffer.text);
}

Test(bench_json, string_escapes)
{
    struct json_buffer buffer;
    struct bench_json json;

    buffer_open(&buffer, &json);
    bench_json_array_begin(&json);
    bench_json_string(&json, "say \"hi\"\\\n\t\x01");
    bench_json_string(&json, "caf\xc3\xa9");
    bench_json_array_end(&json);
    buffer_close(&buffer);

    cr_assert_str_eq(buffer.text,
                     "[\"say \\\"hi\\\"\\\\\\u000a\\u0009\\u0001\","
                     "\"caf\xc3\xa9\"]\n");
    free(buffer.text);
}

Test(bench_json, doubles_and_non_finite)
{
    struct json_buffer buffer;
    struct bench_json json;

    buffer_open(&buffer, &json);
    bench_json_array_begin(&json);
    bench_json_double(&json, 1.5);
    bench_json_double(&json, 214000.25);
    bench_json_double(&json, NAN);
    bench_json_double(&json, INFINITY);
    bench_json_array_end(&json);
    buffer_close(&buffer);

    cr_assert_str_eq(buffer.text, "[1.5,214000,null,null]\n");
    free(buffer.text);
}
