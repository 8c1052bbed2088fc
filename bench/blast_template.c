#include "bench/blast_template.h"

#include <stdio.h>
#include <string.h>

#include "bench/blast_text.h"

int blast_template_check(const char *option, const char *text,
                         bool allow_rcpt, char *error, size_t error_size)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '%') {
            continue;
        }
        p++;
        if (*p == 'n' || *p == 'd' || *p == '%' || (*p == 'r' && allow_rcpt)) {
            continue;
        }
        if (*p == '\0') {
            snprintf(error, error_size,
                     "invalid --%s \"%s\": it ends in a lone %%; expected "
                     "%%%% for a percent sign",
                     option, text);
        } else if (*p == 'r') {
            snprintf(error, error_size,
                     "invalid --%s \"%s\": %%r (recipient index) is only "
                     "for --to; expected %%n, %%d or %%%%",
                     option, text);
        } else {
            snprintf(error, error_size,
                     "invalid --%s \"%s\": unknown placeholder %%%c; "
                     "expected %%n, %s%%d or %%%%",
                     option, text, *p, allow_rcpt ? "%r, " : "");
        }
        return -1;
    }
    return 0;
}

bool blast_template_uses(const char *text, char placeholder)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '%') {
            p++;
            if (*p == placeholder) {
                return true;
            }
            if (*p == '\0') {
                break;
            }
        }
    }
    return false;
}

void blast_template_init(struct blast_template *template, const char *text)
{
    template->text = text;
    template->plain = strchr(text, '%') == NULL;
    template->uses_domain = blast_template_uses(text, 'd');
}

int blast_template_expand(const char *text,
                          const struct blast_template_vars *vars, char *out,
                          size_t out_size, size_t *len)
{
    struct blast_text t;
    const char *p = text;

    /* Literal runs are copied whole: this runs several times for every
     * message sent. */
    blast_text_init(&t, out, out_size);
    for (;;) {
        const char *percent = strchr(p, '%');

        if (percent == NULL) {
            blast_text_put_str(&t, p);
            break;
        }
        blast_text_put(&t, p, (size_t)(percent - p));
        switch (percent[1]) {
        case '%':
            blast_text_put(&t, "%", 1);
            break;
        case 'n':
            blast_text_put_u64(&t, vars->seq);
            break;
        case 'r':
            blast_text_put_u64(&t, vars->rcpt);
            break;
        default:
            blast_text_put_u64(&t, vars->domain);
            break;
        }
        p = percent + 2;
    }
    if (blast_text_end(&t) < 0) {
        return -1;
    }
    *len = t.len;
    return 0;
}

uint64_t blast_template_domain(uint64_t seq, uint64_t rcpt, uint64_t rcpts,
                               uint64_t domains)
{
    if (rcpt == 0) {
        return (seq - 1) % domains + 1;
    }
    return ((seq - 1) % domains * (rcpts % domains) + rcpt - 1) % domains + 1;
}
