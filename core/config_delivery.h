/* Delivery limits of the outbound engine: global defaults set by the
 * top-level delivery_* keys, and overrides per destination in the
 * destinations object. A destination is the next hop's name: the route's
 * or smarthost's "HOST:PORT" as configured when one applies, else the
 * recipient domain in lower case, else an address literal as written. */
#ifndef RINGRELAY_CORE_CONFIG_DELIVERY_H
#define RINGRELAY_CORE_CONFIG_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/conf_parse.h"

struct config;

/* Durations are in seconds. */
struct config_delivery {
    unsigned max_connections;     /* open or opening, per destination */
    unsigned max_messages_per_connection;
    unsigned max_rcpts_per_transaction;
    unsigned max_messages_per_second; /* transactions started; 0: none */
    unsigned connect_timeout;
    unsigned timeout_greeting;    /* the 220 */
    unsigned timeout_command;     /* EHLO, RSET, MAIL, RCPT, QUIT */
    unsigned timeout_data;        /* the 354 after DATA */
    unsigned timeout_final;       /* the reply to the end of data */
    unsigned connection_idle_timeout; /* 0: no reuse */
    unsigned breaker_failures;    /* attempts in a row without a
                                   * greeted session that open the
                                   * breaker; 0: never */
    unsigned breaker_wait;        /* wait before a probe connection */
};

/* config_destination: the overrides of one destination. */
struct config_destination {
    char *name;                   /* lower case */
    struct config_delivery limits;
    unsigned set;                 /* bit i: field i of the table is set */
    unsigned line;                /* of the entry in the config file */
};

void config_delivery_defaults(struct config_delivery *limits);

/* config_delivery_find returns the field index of name ("max_connections"
 * without the delivery_ prefix), or -1. */
int config_delivery_find(const char *name);

/* config_delivery_store checks node against field's bounds and stores it
 * in limits. On error it writes the reason into reason and returns -1. */
int config_delivery_store(struct config_delivery *limits, int field,
                          const struct conf_node *node, char *reason,
                          size_t reason_size);

/* config_delivery_copy_field copies field from one set of limits. */
void config_delivery_copy_field(struct config_delivery *to,
                                const struct config_delivery *from,
                                int field);

/* config_delivery_for fills out with the limits of destination name: the
 * global ones, with the fields its destinations entry sets (the name
 * compares without case). */
void config_delivery_for(const struct config *config, const char *name,
                         struct config_delivery *out);

/* config_delivery_named reports whether the destinations object has an
 * entry called name (compared without case). */
bool config_delivery_named(const struct config *config, const char *name);

#endif
