#include "core/conf_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Objects and arrays may nest this deep; the parser recurses per level. */
#define CONF_MAX_DEPTH 32

struct conf_parser {
    const char *pos;
    const char *end;
    unsigned line;              /* line of pos, 1-based */
    unsigned depth;
    struct conf_error *err;
};

/* The last child of an object or array, so appending is O(1). */
struct conf_list {
    struct conf_node *parent;
    struct conf_node *last;
};

static int conf_parse_value(struct conf_parser *parser,
                            struct conf_node *node);

static int conf_fail_at(struct conf_parser *parser, unsigned line,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_fail_at(struct conf_parser *parser, unsigned line,
                        const char *fmt, ...)
{
    va_list ap;

    parser->err->line = line;
    va_start(ap, fmt);
    vsnprintf(parser->err->reason, sizeof(parser->err->reason), fmt, ap);
    va_end(ap);
    return -1;
}

const char *conf_type_name(enum conf_type type)
{
    switch (type) {
    case CONF_STRING:
        return "string";
    case CONF_NUMBER:
        return "number";
    case CONF_BOOL:
        return "boolean";
    case CONF_ARRAY:
        return "array";
    case CONF_OBJECT:
        return "object";
    }
    return "unknown";
}

void conf_node_free(struct conf_node *node)
{
    struct conf_node *child;

    if (node == NULL) {
        return;
    }
    child = node->first;
    while (child != NULL) {
        struct conf_node *next = child->next;

        conf_node_free(child);
        child = next;
    }
    free(node->key);
    free(node->text);
    free(node);
}

/* Allocates a node and appends it to list. The list's parent owns it. */
static struct conf_node *conf_list_add(struct conf_parser *parser,
                                       struct conf_list *list)
{
    struct conf_node *node = calloc(1, sizeof(*node));

    if (node == NULL) {
        conf_fail_at(parser, parser->line, "out of memory");
        return NULL;
    }
    node->line = parser->line;
    if (list->last == NULL) {
        list->parent->first = node;
    } else {
        list->last->next = node;
    }
    list->last = node;
    list->parent->child_count++;
    return node;
}

static bool conf_at(const struct conf_parser *parser, const char *text)
{
    size_t len = strlen(text);

    return (size_t)(parser->end - parser->pos) >= len &&
           memcmp(parser->pos, text, len) == 0;
}

/* Skips a comment at pos, if any. The newline after a line comment stays
 * because it can end a value. Returns 1 when a comment was skipped. */
static int conf_skip_comment(struct conf_parser *parser)
{
    unsigned start_line = parser->line;

    if (conf_at(parser, "#") || conf_at(parser, "//")) {
        while (parser->pos < parser->end && *parser->pos != '\n') {
            parser->pos++;
        }
        return 1;
    }
    if (!conf_at(parser, "/*")) {
        return 0;
    }
    parser->pos += 2;
    while (!conf_at(parser, "*/")) {
        if (parser->pos == parser->end) {
            return conf_fail_at(parser, start_line,
                                "unterminated comment");
        }
        if (*parser->pos == '\n') {
            parser->line++;
        }
        parser->pos++;
    }
    parser->pos += 2;
    return 1;
}

/* Skips blanks and comments, and newlines too when newlines is set. */
static int conf_skip_space(struct conf_parser *parser, bool newlines)
{
    while (parser->pos < parser->end) {
        char c = *parser->pos;
        int rc;

        if (c == ' ' || c == '\t' || c == '\r') {
            parser->pos++;
            continue;
        }
        if (c == '\n' && newlines) {
            parser->line++;
            parser->pos++;
            continue;
        }
        rc = conf_skip_comment(parser);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            break;
        }
    }
    return 0;
}

static bool conf_is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

static bool conf_is_atom_char(char c)
{
    return conf_is_key_char(c) || c == ':' || c == '/' || c == '@' ||
           c == '[' || c == ']';
}

/* Returns the quote that closes the string opening at pos, or NULL when
 * the line or the input ends first. In a single-quoted string a backslash
 * escapes only the quote, and in a double-quoted one it escapes any byte
 * (conf_unescape then rejects the unknown ones). */
static const char *conf_find_close(const struct conf_parser *parser)
{
    char quote = *parser->pos;

    for (const char *s = parser->pos + 1; s < parser->end; s++) {
        if (*s == '\n') {
            return NULL;
        }
        if (*s == quote) {
            return s;
        }
        if (*s == '\\' && s + 1 < parser->end &&
            (quote == '"' ? s[1] != '\n' : s[1] == quote)) {
            s++;
        }
    }
    return NULL;
}

/* Decodes one escape of a double-quoted string: \" \\ \n \t. Returns the
 * byte, or -1 for any other escape. */
static int conf_unescape(char e)
{
    switch (e) {
    case '"':
    case '\\':
        return e;
    case 'n':
        return '\n';
    case 't':
        return '\t';
    default:
        return -1;
    }
}

/* Reads a quoted string at pos into *out. */
static int conf_parse_quoted(struct conf_parser *parser, char **out)
{
    char quote = *parser->pos;
    const char *close = conf_find_close(parser);
    char *text;
    size_t len = 0;
    int rc = -1;

    if (close == NULL) {
        return conf_fail_at(parser, parser->line, "unterminated string");
    }
    text = malloc((size_t)(close - parser->pos));
    if (text == NULL) {
        return conf_fail_at(parser, parser->line, "out of memory");
    }

    for (const char *p = parser->pos + 1; p < close; p++) {
        int c = (unsigned char)*p;

        if (c < 0x20 && c != '\t') {
            conf_fail_at(parser, parser->line, "control character in string");
            goto out;
        }
        if (c == '\\' && quote == '"') {
            c = conf_unescape(*++p);
            if (c < 0) {
                conf_fail_at(parser, parser->line,
                             "unknown escape '\\%c' in string", *p);
                goto out;
            }
        } else if (c == '\\' && p[1] == quote) {
            c = *++p;
        }
        text[len++] = (char)c;
    }
    text[len] = '\0';
    parser->pos = close + 1;
    *out = text;
    text = NULL;
    rc = 0;

out:
    free(text);
    return rc;
}

/* Multipliers of the number suffixes. The time suffixes give seconds. */
static const struct {
    const char *suffix;
    int64_t scale;
    bool duration;
} conf_suffixes[] = {
    {"k", 1000, false},
    {"m", 1000 * 1000, false},
    {"g", 1000 * 1000 * 1000, false},
    {"kb", 1024, false},
    {"mb", 1024 * 1024, false},
    {"gb", 1024 * 1024 * 1024, false},
    {"s", 1, true},
    {"min", 60, true},
    {"h", 60 * 60, true},
    {"d", 24 * 60 * 60, true},
};

/* Parses an integer with an optional suffix from conf_suffixes, in any
 * case, and sets *duration for a time suffix. Returns 1 for a number, 0
 * when text is not one, -1 when it does not fit in 64 bits. */
static int conf_atom_number(const char *text, int64_t *out, bool *duration)
{
    const size_t suffix_count = sizeof(conf_suffixes) /
                                sizeof(conf_suffixes[0]);
    const char *p = text + (text[0] == '-');
    int64_t value = 0;
    int64_t scale = 1;

    if (!isdigit((unsigned char)*p)) {
        return 0;
    }
    for (; isdigit((unsigned char)*p); p++) {
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, *p - '0', &value)) {
            return -1;
        }
    }

    *duration = false;
    if (*p != '\0') {
        size_t i = 0;

        while (i < suffix_count &&
               strcasecmp(p, conf_suffixes[i].suffix) != 0) {
            i++;
        }
        if (i == suffix_count) {
            return 0;
        }
        scale = conf_suffixes[i].scale;
        *duration = conf_suffixes[i].duration;
    }
    if (__builtin_mul_overflow(value, scale, &value)) {
        return -1;
    }
    *out = text[0] == '-' ? -value : value;
    return 1;
}

static int conf_atom_bool(const char *text, bool *out)
{
    static const char *const names[] = {"true", "yes", "on",
                                        "false", "no", "off"};

    for (size_t i = 0; i < 6; i++) {
        if (strcasecmp(text, names[i]) == 0) {
            *out = i < 3;
            return 1;
        }
    }
    return 0;
}

/* Reports whether the '[' at pos opens an IPv6 literal such as [::1]
 * rather than an array. */
static bool conf_at_ipv6_literal(const struct conf_parser *parser)
{
    char ip[64];
    struct in6_addr addr;
    const char *p = parser->pos + 1;
    size_t len = 0;

    while (p + len < parser->end && p[len] != ']') {
        if (len + 1 >= sizeof(ip) || !conf_is_atom_char(p[len])) {
            return false;
        }
        ip[len] = p[len];
        len++;
    }
    ip[len] = '\0';
    return p + len < parser->end && inet_pton(AF_INET6, ip, &addr) == 1;
}

/* Copies the atom at pos. Keys stop at ':', a key separator. In values a
 * ']' belongs to the atom only after a '[' in it, so "[a, b]" still ends
 * its array. */
static int conf_take_atom(struct conf_parser *parser, bool is_key,
                          char **out)
{
    const char *start = parser->pos;
    unsigned brackets = 0;

    while (parser->pos < parser->end) {
        char c = *parser->pos;

        if (is_key ? !conf_is_key_char(c) : !conf_is_atom_char(c)) {
            break;
        }
        if (c == ']' && brackets == 0) {
            break;
        }
        brackets += c == '[';
        brackets -= c == ']';
        parser->pos++;
    }
    *out = strndup(start, (size_t)(parser->pos - start));
    if (*out == NULL) {
        return conf_fail_at(parser, parser->line, "out of memory");
    }
    return 0;
}

/* Reads an unquoted atom into node as a number, boolean or string. */
static int conf_parse_atom(struct conf_parser *parser, struct conf_node *node)
{
    int rc;

    if (conf_take_atom(parser, false, &node->text) < 0) {
        return -1;
    }
    rc = conf_atom_number(node->text, &node->number, &node->duration);
    if (rc < 0) {
        return conf_fail_at(parser, node->line, "number '%.40s' is too large",
                            node->text);
    }
    if (rc > 0) {
        node->type = CONF_NUMBER;
    } else if (conf_atom_bool(node->text, &node->boolean)) {
        node->type = CONF_BOOL;
    } else {
        node->type = CONF_STRING;
    }
    return 0;
}

/* Parses "[ value, value, ]" at pos into node. */
static int conf_parse_array(struct conf_parser *parser, struct conf_node *node)
{
    struct conf_list list = {node, NULL};
    unsigned open_line = parser->line;

    node->type = CONF_ARRAY;
    parser->pos++;
    for (;;) {
        struct conf_node *item;

        if (conf_skip_space(parser, true) < 0) {
            return -1;
        }
        if (parser->pos == parser->end) {
            return conf_fail_at(parser, open_line,
                                "unterminated array: missing ']'");
        }
        if (*parser->pos == ']') {
            break;
        }

        item = conf_list_add(parser, &list);
        if (item == NULL || conf_parse_value(parser, item) < 0 ||
            conf_skip_space(parser, true) < 0) {
            return -1;
        }
        if (parser->pos < parser->end && *parser->pos == ',') {
            parser->pos++;
        } else if (parser->pos < parser->end && *parser->pos != ']') {
            return conf_fail_at(parser, parser->line,
                                "expected ',' or ']' in array");
        }
    }
    parser->pos++;
    return 0;
}

static int conf_parse_members(struct conf_parser *parser,
                              struct conf_node *node, bool closing,
                              unsigned open_line);

/* Parses an object or an array at pos, one level deeper. */
static int conf_parse_nested(struct conf_parser *parser,
                             struct conf_node *node)
{
    int rc;

    if (parser->depth >= CONF_MAX_DEPTH) {
        return conf_fail_at(parser, parser->line,
                            "nesting deeper than %d levels", CONF_MAX_DEPTH);
    }
    parser->depth++;
    if (*parser->pos == '{') {
        unsigned open_line = parser->line;

        parser->pos++;
        rc = conf_parse_members(parser, node, true, open_line);
    } else {
        rc = conf_parse_array(parser, node);
    }
    parser->depth--;
    return rc;
}

static int conf_parse_value(struct conf_parser *parser,
                            struct conf_node *node)
{
    char c = parser->pos < parser->end ? *parser->pos : '\0';

    if (c == '"' || c == '\'') {
        node->type = CONF_STRING;
        node->quoted = true;
        return conf_parse_quoted(parser, &node->text);
    }
    if (c == '{' || (c == '[' && !conf_at_ipv6_literal(parser))) {
        return conf_parse_nested(parser, node);
    }
    if (c != '\0' && c != ']' && conf_is_atom_char(c)) {
        return conf_parse_atom(parser, node);
    }
    return conf_fail_at(parser, parser->line, "expected value");
}

static int conf_parse_key(struct conf_parser *parser, struct conf_node *member)
{
    char c = *parser->pos;

    if (c == '"' || c == '\'') {
        if (conf_parse_quoted(parser, &member->key) < 0) {
            return -1;
        }
        if (member->key[0] == '\0') {
            return conf_fail_at(parser, member->line, "empty key");
        }
        return 0;
    }
    if (!conf_is_key_char(c)) {
        return conf_fail_at(parser, member->line, "expected key");
    }
    return conf_take_atom(parser, true, &member->key);
}

/* Moves to the value after a key. The value starts on the key's line,
 * but '{' and '[' may open it on a later line. */
static int conf_seek_value(struct conf_parser *parser,
                           const struct conf_node *member)
{
    const char *saved_pos;
    unsigned saved_line;

    if (conf_skip_space(parser, false) < 0) {
        return -1;
    }
    if (parser->pos < parser->end &&
        (*parser->pos == '=' || *parser->pos == ':')) {
        parser->pos++;
        if (conf_skip_space(parser, false) < 0) {
            return -1;
        }
    }

    saved_pos = parser->pos;
    saved_line = parser->line;
    if (conf_skip_space(parser, true) < 0) {
        return -1;
    }
    if (parser->pos < parser->end &&
        (*parser->pos == '{' || *parser->pos == '[')) {
        return 0;
    }
    parser->pos = saved_pos;
    parser->line = saved_line;
    if (parser->pos == parser->end || strchr(";,\n}", *parser->pos)) {
        return conf_fail_at(parser, member->line,
                            "missing value for key '%.40s'", member->key);
    }
    return 0;
}

/* Consumes the terminator after a value: ';' or ','. A newline, a '}' or
 * the end of input also end it and are left for the caller. */
static int conf_end_value(struct conf_parser *parser,
                          const struct conf_node *member)
{
    if (conf_skip_space(parser, false) < 0) {
        return -1;
    }
    if (parser->pos == parser->end || *parser->pos == '\n' ||
        *parser->pos == '}') {
        return 0;
    }
    if (*parser->pos == ';' || *parser->pos == ',') {
        parser->pos++;
        return 0;
    }
    return conf_fail_at(parser, parser->line,
                        "expected ';', ',' or a newline after the value "
                        "of '%.40s'", member->key);
}

static int conf_parse_member(struct conf_parser *parser,
                             struct conf_node *member)
{
    if (conf_parse_key(parser, member) < 0 ||
        conf_seek_value(parser, member) < 0 ||
        conf_parse_value(parser, member) < 0) {
        return -1;
    }
    if (member->type == CONF_OBJECT) {
        return 0;
    }
    return conf_end_value(parser, member);
}

/* Parses members until the '}' that closes the object (closing set), or
 * until the end of input at the top level. */
static int conf_parse_members(struct conf_parser *parser,
                              struct conf_node *node, bool closing,
                              unsigned open_line)
{
    struct conf_list list = {node, NULL};

    node->type = CONF_OBJECT;
    for (;;) {
        struct conf_node *member;

        if (conf_skip_space(parser, true) < 0) {
            return -1;
        }
        if (parser->pos == parser->end) {
            if (closing) {
                return conf_fail_at(parser, open_line,
                                    "unterminated object: missing '}'");
            }
            return 0;
        }
        if (*parser->pos == ';' || *parser->pos == ',') {
            parser->pos++;
            continue;
        }
        if (*parser->pos == '}') {
            if (!closing) {
                return conf_fail_at(parser, parser->line, "unexpected '}'");
            }
            parser->pos++;
            return 0;
        }

        member = conf_list_add(parser, &list);
        if (member == NULL || conf_parse_member(parser, member) < 0) {
            return -1;
        }
    }
}

static unsigned conf_count_lines(const char *text, const char *end)
{
    unsigned line = 1;

    for (; text < end; text++) {
        line += *text == '\n';
    }
    return line;
}

int conf_parse(const char *text, size_t len, struct conf_node **root,
               struct conf_error *err)
{
    struct conf_parser parser = {text, text + len, 1, 0, err};
    const char *nul = memchr(text, '\0', len);
    struct conf_node *node = NULL;
    int rc = -1;

    if (nul != NULL) {
        conf_fail_at(&parser, conf_count_lines(text, nul), "NUL byte");
        goto out;
    }
    node = calloc(1, sizeof(*node));
    if (node == NULL) {
        conf_fail_at(&parser, 1, "out of memory");
        goto out;
    }
    node->line = 1;

    if (conf_skip_space(&parser, true) < 0) {
        goto out;
    }
    if (parser.pos < parser.end && *parser.pos == '{') {
        unsigned open_line = parser.line;

        parser.pos++;
        if (conf_parse_members(&parser, node, true, open_line) < 0 ||
            conf_skip_space(&parser, true) < 0) {
            goto out;
        }
        if (parser.pos != parser.end) {
            conf_fail_at(&parser, parser.line,
                         "unexpected text after the closing '}'");
            goto out;
        }
    } else if (conf_parse_members(&parser, node, false, 1) < 0) {
        goto out;
    }
    *root = node;
    node = NULL;
    rc = 0;

out:
    conf_node_free(node);
    return rc;
}
