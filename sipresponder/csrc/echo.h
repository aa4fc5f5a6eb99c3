/* The echo: sip/response.py Echo (top_via_value, to_tag) and plan.bindings, the part
 * of a response that the request writes. Pure C, no Python.h.
 *
 * echo() runs twice over the same request: first with a buffer that only counts
 * (p NULL), to size the output exactly, then writing into that many octets. Both
 * passes take the same branches, so the second one fills the buffer to the octet;
 * put() still never writes past ``cap``.
 */
#ifndef SR_ECHO_H
#define SR_ECHO_H

#include <stdint.h>

#include "blake2s.h"
#include "scan.h"

#define MAX_BINDINGS 32

typedef struct {
    char *p; /* NULL: the measuring pass */
    ptrdiff_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s, ptrdiff_t n)
{
    if (b->p != NULL && b->n + n <= b->cap)
        memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
}

static void puts_(buf_t *b, const char *s) { put(b, s, (ptrdiff_t)strlen(s)); }
static void puts_span(buf_t *b, span s) { put(b, s.p, s.n); }

/* ``v`` in decimal, as Python's str(int) writes it (no snprintf on the request path) */
static void put_uint(buf_t *b, unsigned long long v)
{
    char digits[20];
    int n = 0;
    do {
        digits[sizeof digits - 1 - (size_t)n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(b, digits + sizeof digits - n, n);
}

/* _same_ip(via.host, ip): equal text (brackets off), else unsure for two IPv6 texts */
static int same_ip(span host, const char *ip, size_t iplen, int *unsure)
{
    *unsure = 0;
    if (host.n >= 2 && host.p[0] == '[') {
        host.p++;
        host.n -= 2;
    }
    if ((size_t)host.n == iplen && memcmp(host.p, ip, iplen) == 0)
        return 1;
    if (has_char(host, ':') && memchr(ip, ':', iplen) != NULL)
        *unsure = 1;
    return 0;
}

static int write_top_via(buf_t *b, req_t *r, const char *ip, size_t iplen, int port)
{
    via_t *via = &r->top;
    span value = r->vias[0];
    param *rport = via_param(via, "rport");
    int wants_rport = rport != NULL && !rport->has_value;
    int unsure;
    int needs_received = wants_rport || !same_ip(via->host, ip, iplen, &unsure);
    if (!wants_rport && unsure)
        return 0;
    if (!needs_received && via_param(via, "received") == NULL) {
        puts_span(b, value);
        return 1;
    }
    puts_span(b, via->head);
    int have_received = 0;
    for (int k = 0; k < via->nparams; k++) {
        param *p = &via->params[k];
        put(b, ";", 1);
        if (ieq(p->name, "received") && needs_received) {
            puts_(b, "received=");
            put(b, ip, (ptrdiff_t)iplen);
            have_received = 1;
        } else if (ieq(p->name, "rport") && wants_rport) {
            puts_(b, "rport=");
            if (port < 0) { /* never from a socket; written as str() would */
                put(b, "-", 1);
                put_uint(b, (unsigned long long)-(long long)port);
            } else {
                put_uint(b, (unsigned long long)port);
            }
        } else {
            puts_span(b, p->name);
            if (p->has_value) {
                put(b, "=", 1);
                puts_span(b, p->value);
            }
        }
    }
    if (needs_received && !have_received) {
        puts_(b, ";received=");
        put(b, ip, (ptrdiff_t)iplen);
    }
    return 1;
}

/* to_tag: blake2s(call-id \0 from-tag \0 branch \0 cseq-number, key, 8 octets), hex */
static void write_to_tag(buf_t *b, const uint8_t *key, size_t keylen, req_t *r)
{
    char out[16];
    if (b->p == NULL) {
        put(b, out, 16); /* measuring: the length alone */
        return;
    }
    span from_tag = r->has_from_tag ? r->from_tag : (span){"", 0};
    span branch = {"", 0};
    param *bp = via_param(&r->top, "branch");
    if (bp != NULL && bp->has_value)
        branch = bp->value;
    span number = r->cseq;
    ptrdiff_t sp = find_char(number, 0, ' ');
    if (sp >= 0)
        number.n = sp;
    sr_b2s_state s;
    sr_b2s_init(&s, 8, key, keylen);
    sr_b2s_update(&s, (const uint8_t *)r->call_id.p, (size_t)r->call_id.n);
    sr_b2s_update(&s, (const uint8_t *)"\0", 1);
    sr_b2s_update(&s, (const uint8_t *)from_tag.p, (size_t)from_tag.n);
    sr_b2s_update(&s, (const uint8_t *)"\0", 1);
    sr_b2s_update(&s, (const uint8_t *)branch.p, (size_t)branch.n);
    sr_b2s_update(&s, (const uint8_t *)"\0", 1);
    sr_b2s_update(&s, (const uint8_t *)number.p, (size_t)number.n);
    uint8_t digest[8];
    sr_b2s_final(&s, digest);
    static const char hex[] = "0123456789abcdef";
    for (int k = 0; k < 8; k++) {
        out[2 * k] = hex[digest[k] >> 4];
        out[2 * k + 1] = hex[digest[k] & 15];
    }
    put(b, out, 16);
}

/* str.strip()'s whitespace among latin-1 characters */
static int python_space(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 0x09 && u <= 0x0d) || (u >= 0x1c && u <= 0x20) || u == 0x85 || u == 0xa0;
}

static unsigned long long capped_number(span digits)
{
    unsigned long long v = 0;
    for (ptrdiff_t k = 0; k < digits.n; k++) {
        v = v * 10 + (unsigned long long)(digits.p[k] - '0');
        if (v > 4294967295ULL)
            return 4294967295ULL; /* min(int(x), 2**32 - 1) */
    }
    return v;
}

static int any_high(span s)
{
    for (ptrdiff_t k = 0; k < s.n; k++)
        if ((unsigned char)s.p[k] >= 0x80)
            return 1;
    return 0;
}

/* plan.bindings: the Contacts a registrar-like 200 lists, each with its expiry.
 * Returns how many, or -1 when the engine must answer (a value this code is not sure
 * how Python reads). */
static int write_bindings(buf_t *b, req_t *r)
{
    unsigned long long dflt = 3600; /* plan._DEFAULT_EXPIRES */
    if (r->n_expires) {
        /* header.isdigit(): a non-ASCII digit would make int() raise in the engine */
        if (any_high(r->expires))
            return -1;
        if (ascii_digits(r->expires))
            dflt = capped_number(r->expires);
    }
    int count = 0;
    for (int row = 0; row < r->n_contacts; row++) {
        span v = r->contacts[row];
        /* abnf.split_top_level on a row without '"': split on ',' outside <...> */
        ptrdiff_t start = 0, i = 0;
        while (i <= v.n) {
            if (i < v.n && v.p[i] == '<') {
                ptrdiff_t end = find_char(v, i, '>');
                if (end < 0)
                    return -1;
                i = end + 1;
                continue;
            }
            if (i < v.n && v.p[i] != ',') {
                i++;
                continue;
            }
            span value = strip_wsp((span){v.p + start, i - start});
            start = i + 1;
            i++;
            if (value.n == 0 || (value.n == 1 && value.p[0] == '*'))
                continue;
            name_addr_t na;
            if (!parse_name_addr(value, &na))
                return -1; /* the engine skips an invalid one: let it say which */
            param *expires = NULL;
            for (int k = 0; k < na.nparams; k++)
                if (ieq(na.params[k].name, "expires"))
                    expires = &na.params[k]; /* the last one, as the loop there keeps */
            unsigned long long value_expires = dflt;
            int given = expires != NULL && expires->has_value;
            if (given) {
                if (any_high(expires->value))
                    return -1;
                if (ascii_digits(expires->value))
                    value_expires = capped_number(expires->value);
            }
            if (value_expires == 0)
                continue; /* unregistered */
            if (++count > MAX_BINDINGS)
                return -1;
            /* value.strip() would take more than WSP (a no-break space, say) */
            if (na.bracketed && (python_space(value.p[0]) || python_space(value.p[value.n - 1])))
                return -1;
            puts_(b, "Contact: ");
            if (na.bracketed) {
                puts_span(b, value);
            } else {
                puts_(b, "<");
                puts_span(b, na.uri);
                puts_(b, ">");
                puts_span(b, na.rest);
            }
            if (!given) {
                puts_(b, ";expires=");
                put_uint(b, value_expires);
            }
            puts_(b, "\r\n");
        }
    }
    return count;
}

/* What the echo is made of besides the request: the table's learned answer (head:
 * the status line; tail: the header lines after the echo; after: what follows a
 * registrar's bindings, when ``bindings``), the source address and the tag key. */
typedef struct {
    span head, tail, after;
    int bindings;
    const char *ip;
    size_t iplen;
    int port;
    const uint8_t *tag_key;
    size_t tag_key_len;
} echo_in;

/* head + echo + tail (+ bindings + after) into ``b``; 0 when the engine must answer */
static int echo(buf_t *b, const echo_in *in, req_t *r)
{
    puts_span(b, in->head);
    puts_(b, "Via: ");
    if (!write_top_via(b, r, in->ip, in->iplen, in->port))
        return 0;
    puts_(b, "\r\n");
    for (int k = 1; k < r->n_vias; k++) {
        puts_(b, "Via: ");
        puts_span(b, r->vias[k]);
        puts_(b, "\r\n");
    }
    puts_(b, "From: ");
    puts_span(b, r->from);
    puts_(b, "\r\nTo: ");
    puts_span(b, r->to);
    if (!r->has_to_tag) {
        puts_(b, ";tag=");
        write_to_tag(b, in->tag_key, in->tag_key_len, r);
    }
    puts_(b, "\r\nCall-ID: ");
    puts_span(b, r->call_id);
    puts_(b, "\r\nCSeq: ");
    puts_span(b, r->cseq);
    puts_(b, "\r\n");
    puts_span(b, in->tail);
    if (in->bindings) {
        if (write_bindings(b, r) < 0)
            return 0;
        puts_span(b, in->after);
    }
    return 1;
}

#endif /* SR_ECHO_H */
