/* Parser for the subset of UCL syntax that the configuration file uses,
 * into a tree of nodes that remember their line numbers.
 *
 * It is written here because Debian 12 does not package the UCL
 * configuration library (its libucl-dev is an unrelated compression
 * library).
 *
 * Members are "key = value", "key: value" or "key value", ended by ';',
 * ',' or a newline. Keys are quoted strings or atoms of letters, digits
 * and _ - . (so a ':' after a key is a separator). A value starts on the
 * line of its key, but '{' and '[' may open it on a later line. Values are:
 * - double-quoted strings, with the escapes \" \\ \n \t and no others;
 * - single-quoted strings, whose only escape is \';
 * - arrays "[a, b, c]", where a trailing comma is allowed;
 * - objects "name { ... }" or "name = { ... }";
 * - unquoted atoms of letters, digits and _ - . : / @ [ ].
 * An atom that is an integer with an optional suffix becomes a number: k, m
 * and g multiply by 1000, kb, mb and gb by 1024, in any case. The time
 * suffixes s, min, h and d give a duration in seconds. The atoms
 * true, yes, on, false, no and off (in any case) become booleans. Any other
 * atom is a string. A value that starts with '[' is an array unless the
 * brackets enclose an IPv6 address, so [::1]:2525 is an atom.
 *
 * Comments run from '#' or '//' to the end of the line, or from '/' '*' to
 * '*' '/' without nesting. Inside an atom "//" is text, so "a = x//y" is
 * the string "x//y". The whole file may be wrapped in braces. Duplicate
 * keys are kept in order, and the caller decides what they mean. */
#ifndef RINGRELAY_CORE_CONF_PARSE_H
#define RINGRELAY_CORE_CONF_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_type {
    CONF_STRING,
    CONF_NUMBER,
    CONF_BOOL,
    CONF_ARRAY,
    CONF_OBJECT,
};

/* conf_node: one value. Children of an object carry keys, and children of
 * an array do not. The text of an atom is kept as written, so "10mb" stays
 * "10mb" next to its number. */
struct conf_node {
    enum conf_type type;
    char *key;                  /* object members only, else NULL */
    unsigned line;              /* 1-based: the key's line, else the value's */
    char *text;                 /* scalars: the string, or the atom */
    int64_t number;             /* CONF_NUMBER: value after the suffix */
    bool duration;              /* CONF_NUMBER with a time suffix: number
                                 * is in seconds */
    bool boolean;               /* CONF_BOOL */
    bool quoted;                /* scalar written in quotes */
    struct conf_node *first;    /* arrays and objects: first child */
    struct conf_node *next;     /* next sibling */
    size_t child_count;
};

/* conf_error: where and why parsing failed. */
struct conf_error {
    unsigned line;              /* 1-based */
    char reason[128];
};

/* conf_parse parses len bytes of text into an object node, the top level.
 * Returns 0 and stores the tree in *root, or -1 and fills err. The reason
 * is "out of memory" when allocation fails. */
int conf_parse(const char *text, size_t len, struct conf_node **root,
               struct conf_error *err);

/* conf_node_free frees node and its children, and accepts NULL. Call it
 * on the root that conf_parse returns. */
void conf_node_free(struct conf_node *node);

/* conf_type_name returns "string", "number", "boolean", "array" or
 * "object", for messages. */
const char *conf_type_name(enum conf_type type);

#endif
