/* The scanner: message.parse_request and the RFC 3261 8.2 checks of
 * uas/validation.py, for the requests the compiled path covers (csrc/speedups.c says
 * what that path is). Pure C, no Python.h: fuzz/fuzz_scan.c runs it alone under
 * AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Every accepting branch mirrors a named Python function; anything it is not sure
 * about -- a grammar corner, a header it does not read, a check that might not pass --
 * is SR_UNUSUAL, and the Python engine answers that request. Every read is bounded by
 * the span it reads.
 */
#ifndef SR_SCAN_H
#define SR_SCAN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

/* Why a request was not answered here (the Python side counts them by name). */
enum {
    SR_ANSWERED = 0,
    SR_MISS = 1,      /* request line not learned yet: the engine answers and may teach */
    SR_LEARNED_NO = 2, /* learned: this request line always goes to the engine */
    SR_UNUSUAL = 3,   /* something the compiled path does not cover */
    SR_OFF = 4,       /* the fast path is switched off for this call */
};

#define MAX_VIAS 16
#define MAX_PARAMS 32
#define MAX_CONTACT_ROWS 16

typedef struct {
    const char *p;
    ptrdiff_t n;
} span;

/* -- character classes (RFC 3261 25.1, as sip/abnf.py and sip/uri.py spell them) -------- */

static unsigned char cls[256];
#define C_TOKEN 1    /* token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" */
#define C_USERINFO 2 /* uri._USERINFO: A-Za-z0-9 -_.!~*'()%&=+$,;?/: */
#define C_REST 4     /* uri._REST: A-Za-z0-9 -_.!~*'()%&=+$,;?/:[]@ */
#define C_HOST 8     /* uri._HOSTPORT / headers._VIA host run: A-Za-z0-9 -_. */
#define C_ALNUM 16
#define C_SCHEME 32  /* abnf.SCHEME after the first ALPHA: ALPHA / DIGIT / "+" / "-" / "." */
#define C_V6 64      /* headers._VIA bracketed host: 0-9A-Fa-f:. */

static void init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char f = 0;
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum)
            f |= C_TOKEN | C_USERINFO | C_REST | C_HOST | C_ALNUM | C_SCHEME;
        if (c && strchr("-.!%*_+`'~", c))
            f |= C_TOKEN;
        if (c && strchr("-_.!~*'()%&=+$,;?/:", c))
            f |= C_USERINFO | C_REST;
        if (c && strchr("[]@", c))
            f |= C_REST;
        if (c && strchr("-_.", c))
            f |= C_HOST;
        if (c && strchr("+-.", c))
            f |= C_SCHEME;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
            c == ':' || c == '.')
            f |= C_V6;
        cls[c] = f;
    }
}

#define IS(c, f) (cls[(unsigned char)(c)] & (f))
#define IS_WSP(c) ((c) == ' ' || (c) == '\t')

static span strip_wsp(span s)
{
    while (s.n > 0 && IS_WSP(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && IS_WSP(s.p[s.n - 1]))
        s.n--;
    return s;
}

static int all_class(span s, unsigned char f)
{
    if (s.n == 0)
        return 0;
    for (ptrdiff_t i = 0; i < s.n; i++)
        if (!IS(s.p[i], f))
            return 0;
    return 1;
}

static int has_char(span s, char c) { return s.n > 0 && memchr(s.p, c, (size_t)s.n) != NULL; }

static ptrdiff_t find_char(span s, ptrdiff_t from, char c)
{
    for (ptrdiff_t i = from; i < s.n; i++)
        if (s.p[i] == c)
            return i;
    return -1;
}

static ptrdiff_t rfind_char(span s, char c)
{
    for (ptrdiff_t i = s.n - 1; i >= 0; i--)
        if (s.p[i] == c)
            return i;
    return -1;
}

static int ieq(span s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char a = s.p[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a + 32);
        if (a != lit[i])
            return 0;
    }
    return 1;
}

static int eq(span a, span b) { return a.n == b.n && memcmp(a.p, b.p, (size_t)a.n) == 0; }

static int ascii_digits(span s)
{
    if (s.n == 0)
        return 0;
    for (ptrdiff_t i = 0; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

/* -- generic-params: abnf.parse_params, for text with no '"' or '<' ----------------------
 *   generic-param  =  token [ EQUAL gen-value ]                     RFC 3261 25.1
 * abnf.split_top_level splits a value without '"' or '<' with a plain str.split, each
 * part stripped of WSP; a name must be a token, a value after '=' must not be empty.
 * Returns the count, or -1 when the Python parser would raise or the text holds what
 * only split_top_level's quoted/bracketed branch reads (the caller defers). */
typedef struct {
    span name;
    span value;
    int has_value;
} param;

static int parse_params(span text, param *out, int max)
{
    if (has_char(text, '"') || has_char(text, '<'))
        return -1;
    int n = 0;
    ptrdiff_t start = 0;
    for (ptrdiff_t i = 0; i <= text.n; i++) {
        if (i < text.n && text.p[i] != ';')
            continue;
        if (n >= max)
            return -1;
        span raw = {text.p + start, i - start};
        ptrdiff_t eqpos = find_char(raw, 0, '=');
        span name = strip_wsp((span){raw.p, eqpos < 0 ? raw.n : eqpos});
        if (!all_class(name, C_TOKEN))
            return -1;
        out[n].name = name;
        out[n].has_value = eqpos >= 0;
        if (eqpos >= 0) {
            span v = strip_wsp((span){raw.p + eqpos + 1, raw.n - eqpos - 1});
            if (v.n == 0)
                return -1;
            out[n].value = v;
        } else {
            out[n].value = (span){NULL, 0};
        }
        n++;
        start = i + 1;
    }
    return n;
}

/* -- URIs: uri.parse_uri's accepting branches (IPv6 references defer) --------------------
 *   SIP-URI   =  "sip:" [ userinfo ] hostport uri-parameters [ headers ]
 *   hostport  =  host [ ":" port ]                                  RFC 3261 25.1
 * Returns 1 when parse_uri would succeed, 0 when unsure or invalid. */
static int valid_uri(span raw)
{
    ptrdiff_t colon = find_char(raw, 0, ':');
    if (colon <= 0)
        return 0;
    span scheme = {raw.p, colon};
    char first = scheme.p[0];
    if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z')))
        return 0;
    for (ptrdiff_t i = 1; i < scheme.n; i++)
        if (!IS(scheme.p[i], C_SCHEME))
            return 0;
    span rest = {raw.p + colon + 1, raw.n - colon - 1};
    if (!ieq(scheme, "sip") && !ieq(scheme, "sips")) {
        if (rest.n == 0)
            return 0;
        for (ptrdiff_t i = 0; i < rest.n; i++)
            if (strchr(" \t<>\"", rest.p[i]) && rest.p[i] != '\0')
                return 0;
        return 1;
    }
    ptrdiff_t at = find_char(rest, 0, '@');
    if (at >= 0) {
        span userinfo = {rest.p, at};
        if (!all_class(userinfo, C_USERINFO))
            return 0;
        rest.p += at + 1;
        rest.n -= at + 1;
    }
    ptrdiff_t i;
    if (rest.n > 0 && rest.p[0] == '[') {
        /* IPv6reference = "[" IPv6address "]": uri._valid_ipv6 asks ipaddress; here only
         * the hex-and-colon forms, where inet_pton(3) and ipaddress agree (an embedded
         * IPv4 address, a zone or RFC 3261's ":::" typo go to the engine). */
        i = 1;
        while (i < rest.n && IS(rest.p[i], C_V6))
            i++;
        if (i == 1 || i >= rest.n || rest.p[i] != ']' || i - 1 > 45)
            return 0;
        char text[46];
        struct in6_addr addr;
        memcpy(text, rest.p + 1, (size_t)(i - 1));
        text[i - 1] = '\0';
        if (strchr(text, '.') != NULL || inet_pton(AF_INET6, text, &addr) != 1)
            return 0;
        i++;
    } else {
        /* host: [A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?, matched as a prefix */
        if (rest.n == 0 || !IS(rest.p[0], C_ALNUM))
            return 0;
        i = 1;
        while (i < rest.n && IS(rest.p[i], C_HOST))
            i++;
        if (rest.p[i - 1] == '-')
            return 0; /* the match would stop before the '-', leaving it as the tail */
    }
    if (i < rest.n && rest.p[i] == ':') {
        ptrdiff_t d = i + 1, port = 0;
        while (d < rest.n && d - (i + 1) < 5 && rest.p[d] >= '0' && rest.p[d] <= '9')
            port = port * 10 + (rest.p[d++] - '0');
        if (d == i + 1)
            return 0; /* ':' with no digits stays in the tail */
        if (port > 65535)
            return 0;
        i = d;
    }
    span tail = {rest.p + i, rest.n - i};
    if (tail.n > 0 && tail.p[0] != ';' && tail.p[0] != '?')
        return 0;
    for (ptrdiff_t k = 0; k < tail.n; k++)
        if (!IS(tail.p[k], C_REST))
            return 0;
    return 1;
}

/* -- name-addr: headers.parse_name_addr --------------------------------------------------
 *   name-addr      =  [ display-name ] LAQUOT addr-spec RAQUOT
 *   display-name   =  *(token LWS)/ quoted-string                  RFC 3261 25.1
 * Returns 1 and fills *out when the Python parser would succeed; 0 when it would fail
 * or this code is unsure (the caller defers either way). */
typedef struct {
    int bracketed;
    span uri;  /* NameAddr.uri.raw */
    span rest; /* NameAddr.params_raw: ";..." or empty */
    param params[MAX_PARAMS];
    int nparams;
} name_addr_t;

static int parse_name_addr(span value, name_addr_t *out)
{
    span text = strip_wsp(value);
    ptrdiff_t i = 0, lt;
    span uri_text, rest;
    if (text.n > 0 && text.p[0] == '"') {
        i = 1;
        for (;;) {
            if (i >= text.n)
                return 0; /* unterminated quoted string */
            if (text.p[i] == '\\') {
                i += 2;
                continue;
            }
            if (text.p[i] == '"') {
                i++;
                break;
            }
            i++;
        }
        lt = find_char(text, i, '<');
        if (lt < 0)
            return 0;
        for (ptrdiff_t k = i; k < lt; k++)
            if (!IS_WSP(text.p[k]))
                return 0;
    } else {
        lt = find_char(text, 0, '<');
        ptrdiff_t semi = find_char(text, 0, ';');
        if (!(lt >= 0 && (semi < 0 || lt < semi)))
            lt = -1;
    }
    if (lt >= 0) {
        ptrdiff_t gt = find_char(text, lt, '>');
        if (gt < 0)
            return 0;
        uri_text = strip_wsp((span){text.p + lt + 1, gt - lt - 1});
        rest = strip_wsp((span){text.p + gt + 1, text.n - gt - 1});
    } else {
        ptrdiff_t semi = find_char(text, 0, ';');
        if (semi < 0) {
            uri_text = strip_wsp(text);
            rest = (span){text.p + text.n, 0};
        } else {
            uri_text = strip_wsp((span){text.p, semi});
            rest = (span){text.p + semi, text.n - semi}; /* ";" + the remainder */
        }
    }
    if (uri_text.n == 0 || !valid_uri(uri_text))
        return 0;
    out->bracketed = lt >= 0;
    out->uri = uri_text;
    out->rest = rest;
    out->nparams = 0;
    if (rest.n == 0)
        return 1;
    if (rest.p[0] != ';')
        return 0;
    out->nparams = parse_params((span){rest.p + 1, rest.n - 1}, out->params, MAX_PARAMS);
    return out->nparams >= 0;
}

/* NameAddr.tag: the first "tag" parameter's value; *has_tag 0 when absent or valueless */
static int name_addr(span value, span *tag, int *has_tag)
{
    name_addr_t na;
    if (!parse_name_addr(value, &na))
        return 0;
    *has_tag = 0;
    for (int k = 0; k < na.nparams; k++) {
        if (ieq(na.params[k].name, "tag")) {
            *has_tag = na.params[k].has_value;
            *tag = na.params[k].value;
            break;
        }
    }
    return 1;
}

/* -- Via: headers.parse_via (strict) -----------------------------------------------------
 *   via-parm       =  sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol  =  protocol-name SLASH protocol-version SLASH transport
 *   sent-by        =  host [ COLON port ]                           RFC 3261 25.1
 * as the _VIA pattern reads it. */
typedef struct {
    span raw;
    span head; /* sent-protocol and sent-by, right-stripped (Via.head) */
    span host;
    param params[MAX_PARAMS];
    int nparams;
} via_t;

static ptrdiff_t skip_wsp(span s, ptrdiff_t i)
{
    while (i < s.n && IS_WSP(s.p[i]))
        i++;
    return i;
}

static ptrdiff_t skip_token(span s, ptrdiff_t i)
{
    ptrdiff_t start = i;
    while (i < s.n && IS(s.p[i], C_TOKEN))
        i++;
    return i > start ? i : -1;
}

static int parse_via(span v, via_t *out)
{
    ptrdiff_t i = skip_wsp(v, 0);
    for (int part = 0; part < 3; part++) {
        i = skip_token(v, i);
        if (i < 0)
            return 0;
        if (part < 2) {
            i = skip_wsp(v, i);
            if (i >= v.n || v.p[i] != '/')
                return 0;
            i = skip_wsp(v, i + 1);
        }
    }
    ptrdiff_t w = skip_wsp(v, i);
    if (w == i)
        return 0; /* [ \t]+ before sent-by */
    i = w;
    ptrdiff_t host_start = i;
    if (i < v.n && v.p[i] == '[') {
        i++;
        ptrdiff_t s = i;
        while (i < v.n && IS(v.p[i], C_V6))
            i++;
        if (i == s || i >= v.n || v.p[i] != ']')
            return 0;
        i++;
    } else {
        while (i < v.n && IS(v.p[i], C_HOST))
            i++;
        if (i == host_start)
            return 0;
    }
    out->host = (span){v.p + host_start, i - host_start};
    ptrdiff_t after_host = i;
    ptrdiff_t j = skip_wsp(v, i);
    if (j < v.n && v.p[j] == ':') {
        j = skip_wsp(v, j + 1);
        ptrdiff_t d = j, port = 0;
        while (d < v.n && v.p[d] >= '0' && v.p[d] <= '9') {
            if (d - j >= 5)
                return 0; /* more than {1,5} digits: no match */
            port = port * 10 + (v.p[d] - '0');
            d++;
        }
        if (d == j)
            return 0;
        if (port > 65535)
            return 0; /* "Via port out of range" */
        after_host = d;
    }
    ptrdiff_t k = skip_wsp(v, after_host);
    out->raw = v;
    if (k >= v.n) {
        out->head = v;
        while (out->head.n > 0 && IS_WSP(out->head.p[out->head.n - 1]))
            out->head.n--;
        out->nparams = 0;
        return 1;
    }
    if (v.p[k] != ';')
        return 0;
    out->head = (span){v.p, k};
    while (out->head.n > 0 && IS_WSP(out->head.p[out->head.n - 1]))
        out->head.n--;
    out->nparams = parse_params((span){v.p + k + 1, v.n - k - 1}, out->params, MAX_PARAMS);
    return out->nparams >= 0;
}

static param *via_param(via_t *via, const char *name)
{
    for (int k = 0; k < via->nparams; k++)
        if (ieq(via->params[k].name, name))
            return &via->params[k];
    return NULL;
}

/* -- CSeq: headers.parse_cseq -------------------------------------------------------------
 *   CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method                       RFC 3261 25.1 */
static int parse_cseq(span value, span *method)
{
    span s = strip_wsp(value);
    ptrdiff_t i = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9')
        i++;
    if (i == 0)
        return 0;
    span digits = {s.p, i};
    ptrdiff_t w = skip_wsp(s, i);
    if (w == i)
        return 0;
    span m = {s.p + w, s.n - w};
    if (!all_class(m, C_TOKEN))
        return 0;
    while (digits.n > 1 && digits.p[0] == '0') {
        digits.p++;
        digits.n--;
    }
    if (digits.n > 10)
        return 0;
    unsigned long long number = 0;
    for (ptrdiff_t k = 0; k < digits.n; k++)
        number = number * 10 + (unsigned long long)(digits.p[k] - '0');
    if (number > 4294967295ULL)
        return 0;
    *method = m;
    return 1;
}

typedef struct {
    span line, method, uri;
    span from, to, call_id, cseq, max_forwards, content_type, expires;
    int n_from, n_to, n_call_id, n_cseq, n_max_forwards, n_content_type, n_content_length;
    int n_expires, n_require, n_content_encoding, n_content_language;
    span vias[MAX_VIAS];
    int n_vias;
    ptrdiff_t body_len;
    span contacts[MAX_CONTACT_ROWS]; /* the Contact rows, for a registrar's bindings */
    int n_contacts;
    via_t top;                  /* vias[0], parsed */
    span to_tag, from_tag;      /* the first "tag" parameters ... */
    int has_to_tag, has_from_tag; /* ... when they carry a value (NameAddr.tag) */
} req_t;

/* The rows of list-valued headers that split_top_level would parse (uas/validation.py
 * _structure's SPLIT): clean when they hold no '"' and their last '<' is closed. */
static int split_clean(span value)
{
    if (has_char(value, '"'))
        return 0;
    return rfind_char(value, '<') <= rfind_char(value, '>');
}

/* Header field names the checks or the echo read, by their dictionary key (abnf
 * canonical_name: long names any case, and compact forms). */
enum { H_OTHER, H_VIA, H_FROM, H_TO, H_CALL_ID, H_CSEQ, H_CONTENT_LENGTH, H_CONTENT_TYPE,
       H_CONTENT_ENCODING, H_CONTENT_LANGUAGE, H_MAX_FORWARDS, H_EXPIRES, H_REQUIRE,
       H_CONTACT, H_ACCEPT };

static int header_kind(span name)
{
    if (name.n == 1) {
        switch (name.p[0] | 0x20) {
        case 'v': return H_VIA;
        case 'f': return H_FROM;
        case 't': return H_TO;
        case 'i': return H_CALL_ID;
        case 'l': return H_CONTENT_LENGTH;
        case 'c': return H_CONTENT_TYPE;
        case 'e': return H_CONTENT_ENCODING;
        case 'm': return H_CONTACT;
        default: return H_OTHER;
        }
    }
    static const struct { const char *name; int kind; } known[] = {
        {"via", H_VIA}, {"from", H_FROM}, {"to", H_TO}, {"call-id", H_CALL_ID},
        {"cseq", H_CSEQ}, {"content-length", H_CONTENT_LENGTH},
        {"content-type", H_CONTENT_TYPE}, {"content-encoding", H_CONTENT_ENCODING},
        {"content-language", H_CONTENT_LANGUAGE}, {"max-forwards", H_MAX_FORWARDS},
        {"expires", H_EXPIRES}, {"require", H_REQUIRE}, {"contact", H_CONTACT},
        {"accept", H_ACCEPT},
    };
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
        if (ieq(name, known[k].name))
            return known[k].kind;
    return H_OTHER;
}

/* What scan() checks a request against: a scenario's limits and check switches
 * (settings and [settings.checks]), as plain C data. */
typedef struct {
    ptrdiff_t max_headers, max_line_length, max_message_size;
    int accept_any; /* settings.accept holds the asterisk type */
    const span *accept; /* settings.accept as written, n_accept of them */
    ptrdiff_t n_accept;
    int chk_cseq_method, chk_expires, chk_max_forwards, chk_content_type;
    int chk_content_encoding, chk_content_language;
} sr_rules;

/* 1 when ``ct``, ASCII-lowercased, equals one of settings.accept */
static int accepted(const sr_rules *t, span ct)
{
    for (ptrdiff_t k = 0; k < t->n_accept; k++) {
        span as = t->accept[k];
        if (as.n != ct.n)
            continue;
        ptrdiff_t q = 0;
        for (; q < ct.n; q++) {
            char c = ct.p[q];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c != as.p[q])
                break;
        }
        if (q == ct.n)
            return 1;
    }
    return 0;
}

/* message.parse_request plus the checks of validation.check_request that a request
 * passes, for the requests this code covers. Returns SR_ANSWERED when the request
 * parsed cleanly and would pass every enabled check, else SR_UNUSUAL. */
static int scan(const sr_rules *t, const char *data, ptrdiff_t len, int datagram, req_t *r)
{
    if (len > t->max_message_size)
        return SR_UNUSUAL;
    memset(r, 0, sizeof(*r));
    /* find_header_end: CRLF CRLF, with no bare CR or LF anywhere before it (a bare LF
     * would be a line end to the parser, a bare CR an error). */
    ptrdiff_t head_end = -1;
    for (ptrdiff_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\r') {
            if (i + 1 >= len || data[i + 1] != '\n')
                return SR_UNUSUAL;
            if (i + 3 < len && data[i + 2] == '\r' && data[i + 3] == '\n') {
                head_end = i;
                break;
            }
            i++;
        } else if (c == '\n') {
            return SR_UNUSUAL;
        }
    }
    if (head_end < 0)
        return SR_UNUSUAL;
    ptrdiff_t body_start = head_end + 4;
    ptrdiff_t nlines = 1;
    for (ptrdiff_t i = 0; i < head_end; i++)
        if (data[i] == '\n')
            nlines++;
    if (t->max_headers && nlines > t->max_headers)
        return SR_UNUSUAL; /* the 513 limit could apply: the engine decides */

    /* Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 25.1) */
    ptrdiff_t eol = 0;
    while (eol < head_end && data[eol] != '\r')
        eol++;
    span line = {data, eol};
    if (t->max_line_length && eol > t->max_line_length && head_end > t->max_line_length)
        return SR_UNUSUAL;
    ptrdiff_t sp1 = find_char(line, 0, ' ');
    ptrdiff_t sp2 = sp1 < 0 ? -1 : find_char(line, sp1 + 1, ' ');
    if (sp1 <= 0 || sp2 < 0 || find_char(line, sp2 + 1, ' ') >= 0)
        return SR_UNUSUAL;
    r->line = line;
    r->method = (span){data, sp1};
    r->uri = (span){data + sp1 + 1, sp2 - sp1 - 1};
    span version = {data + sp2 + 1, eol - sp2 - 1};
    if (!all_class(r->method, C_TOKEN) || r->uri.n == 0 || version.n != 7 ||
        memcmp(version.p, "SIP/2.0", 7) != 0)
        return SR_UNUSUAL;

    /* message-header = (header-name HCOLON header-value) CRLF */
    ptrdiff_t pos = eol + 2;
    while (pos < head_end + 2) {
        ptrdiff_t end = pos;
        while (end < head_end && data[end] != '\r')
            end++;
        span hl = {data + pos, end - pos};
        pos = end + 2;
        if (hl.n == 0)
            return SR_UNUSUAL;
        if (t->max_line_length && hl.n > t->max_line_length && head_end > t->max_line_length)
            return SR_UNUSUAL;
        if (IS_WSP(hl.p[0]))
            return SR_UNUSUAL; /* folding */
        ptrdiff_t colon = find_char(hl, 0, ':');
        if (colon <= 0)
            return SR_UNUSUAL;
        span name = {hl.p, colon};
        if (!all_class(name, C_TOKEN))
            return SR_UNUSUAL;
        span value = strip_wsp((span){hl.p + colon + 1, hl.n - colon - 1});
        switch (header_kind(name)) {
        case H_VIA: {
            if (!split_clean(value) || has_char(value, '<'))
                return SR_UNUSUAL;
            ptrdiff_t start = 0;
            for (ptrdiff_t i = 0; i <= value.n; i++) {
                if (i < value.n && value.p[i] != ',')
                    continue;
                span one = strip_wsp((span){value.p + start, i - start});
                if (one.n == 0 || r->n_vias >= MAX_VIAS)
                    return SR_UNUSUAL;
                r->vias[r->n_vias++] = one;
                start = i + 1;
            }
            break;
        }
        case H_FROM:
            if (r->n_from++ == 0)
                r->from = value;
            break;
        case H_TO:
            if (r->n_to++ == 0)
                r->to = value;
            break;
        case H_CALL_ID:
            if (r->n_call_id++ == 0)
                r->call_id = value;
            break;
        case H_CSEQ:
            if (r->n_cseq++ == 0)
                r->cseq = value;
            break;
        case H_CONTENT_LENGTH: {
            if (r->n_content_length++ > 0)
                return SR_UNUSUAL;
            /* digits only, at most 9 after leading zeros, and no longer than the body */
            if (!ascii_digits(value))
                return SR_UNUSUAL;
            span d = value;
            while (d.n > 1 && d.p[0] == '0') {
                d.p++;
                d.n--;
            }
            if (d.n > 9)
                return SR_UNUSUAL;
            ptrdiff_t n = 0;
            for (ptrdiff_t k = 0; k < d.n; k++)
                n = n * 10 + (d.p[k] - '0');
            if (n > len - body_start)
                return SR_UNUSUAL;
            r->body_len = n;
            break;
        }
        case H_CONTENT_TYPE:
            if (r->n_content_type++ == 0)
                r->content_type = value;
            break;
        case H_CONTENT_ENCODING:
            r->n_content_encoding++;
            if (!split_clean(value))
                return SR_UNUSUAL;
            break;
        case H_CONTENT_LANGUAGE:
            r->n_content_language++;
            if (!split_clean(value))
                return SR_UNUSUAL;
            break;
        case H_MAX_FORWARDS:
            if (r->n_max_forwards++ == 0)
                r->max_forwards = value;
            break;
        case H_EXPIRES:
            if (r->n_expires++ == 0)
                r->expires = value;
            break;
        case H_REQUIRE:
            r->n_require++;
            break;
        case H_CONTACT:
            if (!split_clean(value) || r->n_contacts >= MAX_CONTACT_ROWS)
                return SR_UNUSUAL;
            r->contacts[r->n_contacts++] = value;
            break;
        case H_ACCEPT:
            if (!split_clean(value))
                return SR_UNUSUAL;
            break;
        default:
            break;
        }
    }
    if (r->n_content_length == 0)
        r->body_len = datagram ? len - body_start : 0;

    /* validation._structure: the mandatory fields, then each one's grammar */
    if (!r->n_to || !r->n_from || !r->n_call_id || !r->n_cseq || r->n_vias == 0)
        return SR_UNUSUAL;
    /* validation._duplicates (a repeat goes to the engine whether the check is on or not) */
    if (r->n_to > 1 || r->n_from > 1 || r->n_call_id > 1 || r->n_cseq > 1 ||
        r->n_max_forwards > 1 || r->n_content_type > 1)
        return SR_UNUSUAL;
    span cseq_method;
    if (!parse_cseq(r->cseq, &cseq_method))
        return SR_UNUSUAL;
    /* The Request-URI (validation._structure, _uri_scheme) and the method (_method) are
     * part of the learned key: a request line is only learned once the engine took it. */
    if (!name_addr(r->to, &r->to_tag, &r->has_to_tag) ||
        !name_addr(r->from, &r->from_tag, &r->has_from_tag))
        return SR_UNUSUAL;
    if (!parse_via(r->vias[0], &r->top))
        return SR_UNUSUAL;
    for (int k = 1; k < r->n_vias; k++) {
        via_t via;
        if (!parse_via(r->vias[k], &via))
            return SR_UNUSUAL;
    }
    /* the switchable checks, in validation.CHECKS order */
    if (t->chk_cseq_method && !eq(cseq_method, r->method))
        return SR_UNUSUAL;
    if (t->chk_expires && r->n_expires && !ascii_digits(r->expires))
        return SR_UNUSUAL;
    if (t->chk_max_forwards && r->n_max_forwards) {
        span mf = strip_wsp(r->max_forwards);
        int zeros = mf.n > 0;
        for (ptrdiff_t k = 0; k < mf.n; k++)
            if (mf.p[k] != '0')
                zeros = 0;
        if (zeros)
            return SR_UNUSUAL;
    }
    if (r->n_require)
        return SR_UNUSUAL;
    if (r->body_len > 0) {
        if (t->chk_content_encoding && r->n_content_encoding)
            return SR_UNUSUAL;
        if (t->chk_content_language && r->n_content_language)
            return SR_UNUSUAL;
        if (t->chk_content_type && r->n_content_type && !t->accept_any) {
            /* (content-type or "").split(";", 1)[0].strip().lower() in settings.accept */
            span ct = r->content_type;
            ptrdiff_t semi = find_char(ct, 0, ';');
            if (semi >= 0)
                ct.n = semi;
            ct = strip_wsp(ct);
            if (ct.n > 0 && !accepted(t, ct))
                return SR_UNUSUAL;
        }
    }
    return SR_ANSWERED;
}

/* The length of the message at the start of a stream, as sip/framing.py StreamFramer
 * cuts it (header section + Content-Length), or -1 when the framer should look: no
 * header end yet, no single plain Content-Length line, folding. */
static ptrdiff_t stream_total(const char *data, ptrdiff_t len)
{
    ptrdiff_t head_end = -1;
    for (ptrdiff_t i = 0; i + 3 < len; i++) {
        if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n') {
            head_end = i;
            break;
        }
        if (data[i] == '\n' && i + 1 < len && data[i + 1] == '\n')
            return -1; /* a bare-LF message: the framer's find_header_end decides */
    }
    if (head_end < 0)
        return -1;
    ptrdiff_t found = -1;
    int count = 0;
    ptrdiff_t pos = 0;
    while (pos < head_end) {
        ptrdiff_t end = pos;
        while (end < head_end && data[end] != '\n')
            end++;
        span line = {data + pos, end - pos};
        if (line.n > 0 && line.p[line.n - 1] == '\r')
            line.n--;
        pos = end + 1;
        if (line.n > 0 && IS_WSP(line.p[0]))
            return -1; /* folding: abnf.content_lengths reads continuation lines */
        ptrdiff_t colon = find_char(line, 0, ':');
        if (colon <= 0)
            continue;
        span name = {line.p, colon};
        span trimmed = name;
        while (trimmed.n > 0 && IS_WSP(trimmed.p[trimmed.n - 1]))
            trimmed.n--;
        if (!ieq(trimmed, "content-length") && !ieq(trimmed, "l"))
            continue;
        if (trimmed.n != name.n)
            return -1;
        span value = strip_wsp((span){line.p + colon + 1, line.n - colon - 1});
        if (!ascii_digits(value) || ++count > 1)
            return -1;
        while (value.n > 1 && value.p[0] == '0') {
            value.p++;
            value.n--;
        }
        if (value.n > 9)
            return -1;
        found = 0;
        for (ptrdiff_t k = 0; k < value.n; k++)
            found = found * 10 + (value.p[k] - '0');
    }
    if (count != 1)
        return -1;
    return head_end + 4 + found;
}

#endif /* SR_SCAN_H */
