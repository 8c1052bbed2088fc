#include "core/config_delivery.h"

#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"

/* config_delivery_field: the name, bounds and default of one limit. */
struct config_delivery_field {
    const char *name;
    int64_t min;
    int64_t max;
    unsigned default_value;
    size_t offset;
    bool seconds;               /* a duration: "30", "30s" or "5min" */
};

#define DELIVERY_FIELD(name, min, max, value, seconds)                    \
    {#name, min, max, value, offsetof(struct config_delivery, name),      \
     seconds}

/* The reply timeouts are those of RFC 5321 section 4.5.3.2: 5 minutes for
 * the greeting, MAIL and RCPT, 2 minutes for DATA and 10 minutes after the
 * final dot. EHLO, RSET and QUIT take the MAIL timeout. */
static const struct config_delivery_field delivery_fields[] = {
    DELIVERY_FIELD(max_connections, 1, 10000, 20, false),
    DELIVERY_FIELD(max_messages_per_connection, 1, 1000000, 100, false),
    /* RFC 5321 section 4.5.3.1.8: servers take at least 100. */
    DELIVERY_FIELD(max_rcpts_per_transaction, 1, 100000, 100, false),
    DELIVERY_FIELD(max_messages_per_second, 0, 1000000, 0, false),
    DELIVERY_FIELD(connect_timeout, 1, 600, 30, true),
    DELIVERY_FIELD(timeout_greeting, 1, 3600, 300, true),
    DELIVERY_FIELD(timeout_command, 1, 3600, 300, true),
    DELIVERY_FIELD(timeout_data, 1, 3600, 120, true),
    DELIVERY_FIELD(timeout_final, 1, 3600, 600, true),
    DELIVERY_FIELD(connection_idle_timeout, 0, 3600, 5, true),
    DELIVERY_FIELD(breaker_failures, 0, 1000, 5, false),
    DELIVERY_FIELD(breaker_wait, 1, 86400, 60, true),
};

#define DELIVERY_FIELD_COUNT \
    (sizeof(delivery_fields) / sizeof(delivery_fields[0]))

static unsigned *delivery_slot(struct config_delivery *limits, int field)
{
    return (unsigned *)(void *)((char *)limits +
                                delivery_fields[field].offset);
}

void config_delivery_defaults(struct config_delivery *limits)
{
    for (size_t i = 0; i < DELIVERY_FIELD_COUNT; i++) {
        *delivery_slot(limits, (int)i) = delivery_fields[i].default_value;
    }
}

int config_delivery_find(const char *name)
{
    for (size_t i = 0; i < DELIVERY_FIELD_COUNT; i++) {
        if (strcmp(delivery_fields[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int config_delivery_store(struct config_delivery *limits, int field,
                          const struct conf_node *node, char *reason,
                          size_t reason_size)
{
    const struct config_delivery_field *def = &delivery_fields[field];

    if (node->type != CONF_NUMBER || (node->duration && !def->seconds)) {
        snprintf(reason, reason_size, "%s: expected %s", def->name,
                 def->seconds ? "a number of seconds such as 30 or 5min"
                              : "a whole number");
        return -1;
    }
    if (node->number < def->min || node->number > def->max) {
        snprintf(reason, reason_size, "%s: %s is outside %lld..%lld%s",
                 def->name, node->text, (long long)def->min,
                 (long long)def->max, def->seconds ? " seconds" : "");
        return -1;
    }
    *delivery_slot(limits, field) = (unsigned)node->number;
    return 0;
}

void config_delivery_copy_field(struct config_delivery *to,
                                const struct config_delivery *from,
                                int field)
{
    *delivery_slot(to, field) =
        *delivery_slot((struct config_delivery *)from, field);
}

void config_delivery_for(const struct config *config, const char *name,
                         struct config_delivery *out)
{
    *out = config->delivery;
    for (size_t i = 0; i < config->destination_count; i++) {
        const struct config_destination *dest = &config->destinations[i];

        if (strcasecmp(dest->name, name) != 0) {
            continue;
        }
        for (size_t f = 0; f < DELIVERY_FIELD_COUNT; f++) {
            if ((dest->set & (1u << f)) != 0) {
                config_delivery_copy_field(out, &dest->limits, (int)f);
            }
        }
        return;
    }
}

bool config_delivery_named(const struct config *config, const char *name)
{
    for (size_t i = 0; i < config->destination_count; i++) {
        if (strcasecmp(config->destinations[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}
