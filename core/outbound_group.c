#include "core/outbound_group.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/config_delivery.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/mx_set_name.h"
#include "core/outbound_dest.h"
#include "core/outbound_job.h"
#include "core/queue.h"
#include "core/tls_policy.h"
#include "dns/resolver.h"
#include "proto/smtp_address.h"

/* One recipient domain of a group and the destination its MX set names.
 * key stays "" while the lookup runs and when the domain keeps its own
 * name. */
struct group_domain {
    struct outbound_group *group;
    char domain[256];            /* lower case */
    char key[MX_SET_NAME_SIZE];
    bool failed;                 /* the lookup failed temporarily */
    struct dns_request *dns;     /* while the lookup runs */
};

/* The recipients of one message that wait for the MX lookups of their
 * domains before their jobs are made. */
struct outbound_group {
    struct outbound *outbound;
    struct outbound_group *prev;  /* list of all groups */
    struct outbound_group *next;
    struct queue_msg *msg;        /* one reference */
    size_t *index;                /* recipients, into msg->rcpts */
    size_t count;
    struct group_domain *domains;
    size_t domain_count;
    size_t pending;               /* lookups still running */
    struct outbound_dest *keep;   /* one job reference, or NULL */
    bool due_now;                 /* flushed while waiting */
};

bool outbound_group_wanted(const struct config *config,
                           const struct smtp_mailbox *mailbox)
{
    if (mailbox == NULL || mailbox->kind != SMTP_DOMAIN_NAME) {
        return false;
    }
    return config_route_entry(config, mailbox->domain) == NULL &&
           config_route_for(config, mailbox->domain) == NULL &&
           !config_delivery_named(config, mailbox->domain);
}

/* group_key writes the MX-set name of result into key (mx_set_name.h),
 * ranked by preference value, so 10/20 and 5/50 give the same order and
 * share. A failed lookup, an implicit MX, a full host list or a name too
 * long leaves key "". */
static void group_key(const struct dns_mx_result *result, char *key,
                      size_t size)
{
    struct mx_set_host hosts[DNS_MAX_MX_HOSTS];

    key[0] = '\0';

    /* A full list may be a cut through a shuffled preference level, so
     * its name could change from one lookup to the next. */
    if (result->status != DNS_OK || result->implicit ||
        result->host_count == 0 || result->host_count >= DNS_MAX_MX_HOSTS) {
        return;
    }
    for (size_t i = 0; i < result->host_count; i++) {
        hosts[i].name = result->hosts[i].name;
        hosts[i].rank = result->hosts[i].preference;
    }
    (void)mx_set_name_write(hosts, result->host_count, key, size);
}

static void group_free(struct outbound_group *group)
{
    struct outbound_group **head = outbound_groups(group->outbound);
    struct daemon *daemon = outbound_daemon(group->outbound);

    if (group->prev != NULL) {
        group->prev->next = group->next;
    } else {
        *head = group->next;
    }
    if (group->next != NULL) {
        group->next->prev = group->prev;
    }
    for (size_t i = 0; i < group->domain_count; i++) {
        dns_request_cancel(group->domains[i].dns);
    }
    if (group->keep != NULL) {
        outbound_dest_put(group->keep);
    }
    if (daemon->queue != NULL) {
        queue_msg_unref(daemon->queue, group->msg);
    }
    free(group->domains);
    free(group->index);
    free(group);
}

/* group_answered takes one lookup's answer; the last one makes the jobs.
 * The kept destination is dropped only after that, so it is not freed
 * in between. */
void outbound_group_key(const struct config *config, const char *domain,
                        const struct dns_mx_result *result, char *key,
                        size_t size)
{
    group_key(result, key, size);

    /* Under DANE the MX answer must be signed for its hosts' TLSA
     * records to count (RFC 7672 section 2.2.1), and the attempt looks
     * up only the first domain of a shared job, so a domain without a
     * signed answer keeps to itself. */
    if (!result->authenticated &&
        config_tls_policy_for(config, domain) == TLS_POLICY_DANE) {
        key[0] = '\0';
    }
}

static void group_answered(void *arg, const struct dns_mx_result *result)
{
    struct group_domain *domain = arg;
    struct outbound_group *group = domain->group;
    const struct config *config = outbound_daemon(group->outbound)->config;

    domain->dns = NULL;
    domain->failed = result->status == DNS_TEMPFAIL;
    outbound_group_key(config, domain->domain, result, domain->key,
                       sizeof(domain->key));
    if (--group->pending > 0) {
        return;
    }
    outbound_make_jobs(group->outbound, group->msg, group->index,
                       group->count, group);
    group_free(group);
}

/* group_add_domain lists the domain of mailbox once. */
static void group_add_domain(struct outbound_group *group,
                             const struct smtp_mailbox *mailbox)
{
    struct group_domain *domain = &group->domains[group->domain_count];

    for (size_t i = 0; i < sizeof(domain->domain) - 1 &&
                       mailbox->domain[i] != '\0';
         i++) {
        domain->domain[i] = (char)tolower((unsigned char)mailbox->domain[i]);
    }
    for (size_t i = 0; i < group->domain_count; i++) {
        if (strcmp(group->domains[i].domain, domain->domain) == 0) {
            memset(domain->domain, 0, sizeof(domain->domain));
            return;
        }
    }
    domain->group = group;
    group->domain_count++;
}

/* group_new lists the domains of index[] that want a lookup. Returns
 * NULL when none does or out of memory (*failed set). */
static struct outbound_group *group_new(struct outbound *outbound,
                                        struct queue_msg *msg,
                                        const size_t *index, size_t count,
                                        bool *failed)
{
    const struct config *config = outbound_daemon(outbound)->config;
    struct outbound_group *group = calloc(1, sizeof(*group));

    *failed = true;
    if (group == NULL) {
        return NULL;
    }
    group->outbound = outbound;
    group->index = malloc(count * sizeof(*group->index));
    group->domains = calloc(count, sizeof(*group->domains));
    if (group->index == NULL || group->domains == NULL) {
        goto out;
    }
    *failed = false;
    memcpy(group->index, index, count * sizeof(*index));
    group->count = count;
    for (size_t i = 0; i < count; i++) {
        struct smtp_mailbox parsed;
        const struct smtp_mailbox *mailbox = outbound_rcpt_mailbox(
            msg, msg->rcpts[index[i]].address, &parsed);

        if (outbound_group_wanted(config, mailbox)) {
            group_add_domain(group, mailbox);
        }
    }
    if (group->domain_count > 0) {
        group->msg = msg;
        return group;
    }

out:
    free(group->domains);
    free(group->index);
    free(group);
    return NULL;
}

int outbound_group_start(struct outbound *outbound, struct queue_msg *msg,
                         const size_t *index, size_t count,
                         struct outbound_dest *keep)
{
    struct daemon *daemon = outbound_daemon(outbound);
    struct outbound_group **head = outbound_groups(outbound);
    struct outbound_group *group;
    bool failed;

    group = group_new(outbound, msg, index, count, &failed);
    if (group == NULL) {
        return failed ? -1 : 0;
    }
    queue_msg_ref(msg);
    group->next = *head;
    if (*head != NULL) {
        (*head)->prev = group;
    }
    *head = group;
    if (keep != NULL) {
        group->keep = outbound_dest_get(outbound, outbound_dest_list(outbound),
                                        keep->name);
    }

    /* Every lookup counts as pending before the first starts: an answer
     * never comes from inside dns_resolve_mx(), but a failed start is
     * counted at once. */
    group->pending = group->domain_count;
    for (size_t i = 0; i < group->domain_count; i++) {
        struct group_domain *domain = &group->domains[i];

        if (dns_resolve_mx(daemon->resolver, domain->domain, group_answered,
                           domain, &domain->dns) < 0) {
            domain->dns = NULL;
            group->pending--;
        }
    }
    if (group->pending == 0) {
        outbound_make_jobs(outbound, msg, group->index, group->count, group);
        group_free(group);
    }
    return 1;
}

/* group_domain_of returns the domain of mailbox among group's, or NULL
 * when group is NULL or did not look it up. */
static const struct group_domain *group_domain_of(
    const struct outbound_group *group, const struct smtp_mailbox *mailbox)
{
    if (group == NULL || mailbox == NULL ||
        mailbox->kind != SMTP_DOMAIN_NAME) {
        return NULL;
    }
    for (size_t i = 0; i < group->domain_count; i++) {
        if (strcasecmp(group->domains[i].domain, mailbox->domain) == 0) {
            return &group->domains[i];
        }
    }
    return NULL;
}

void outbound_group_rename(const struct outbound_group *group,
                           const struct smtp_mailbox *mailbox,
                           char *dest_name, size_t size)
{
    const struct group_domain *domain = group_domain_of(group, mailbox);

    if (domain != NULL && domain->key[0] != '\0') {
        snprintf(dest_name, size, "%s", domain->key);
    }
}

bool outbound_group_failed(const struct outbound_group *group,
                           const struct smtp_mailbox *mailbox)
{
    const struct group_domain *domain = group_domain_of(group, mailbox);

    return domain != NULL && domain->failed;
}

bool outbound_group_due_now(const struct outbound_group *group)
{
    return group != NULL && group->due_now;
}

size_t outbound_group_flush(struct outbound *outbound,
                            const struct queue_msg *msg)
{
    size_t count = 0;

    for (struct outbound_group *group = *outbound_groups(outbound);
         group != NULL; group = group->next) {
        if (msg == NULL || group->msg == msg) {
            group->due_now = true;
            count++;
        }
    }
    return count;
}

bool outbound_group_lists(struct outbound *outbound,
                          const struct queue_msg *msg, size_t index)
{
    for (const struct outbound_group *group = *outbound_groups(outbound);
         group != NULL; group = group->next) {
        if (group->msg != msg) {
            continue;
        }
        for (size_t i = 0; i < group->count; i++) {
            if (group->index[i] == index) {
                return true;
            }
        }
    }
    return false;
}

void outbound_group_free_all(struct outbound *outbound)
{
    struct outbound_group **head = outbound_groups(outbound);

    while (*head != NULL) {
        group_free(*head);
    }
}
