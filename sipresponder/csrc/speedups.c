/* sipresponder._speedups: the compiled request path (issue 13).
 *
 * What it does: for a request whose answer the Python engine has already given once
 * for the same request line on the same listener (uas/fast.py teaches it, and only
 * when that answer cannot depend on anything but the request line: see
 * FastPath.learn), it checks the request the way uas/validation.py would, builds the
 * echo (sip/response.py Echo: Via with received/rport, From, To with the
 * deterministic tag, Call-ID, CSeq) and returns status line + echo + the plan's fixed
 * tail: the octets the engine would send. Anything it is not sure about -- a grammar
 * corner, a header it does not read, a check that might not pass -- it DEFERS: the
 * Python engine answers that request, so that the Python code stays the one
 * definition of behaviour. Every accepting branch below mirrors a named Python
 * function; the differential tests (tests/differential/) compare the two on the
 * torture corpus, the fuzz corpora, generated requests and every bundled scenario.
 *
 * serve_udp() reads a listener's datagrams with recvmmsg(2) and answers the ones
 * the table knows with one sendmmsg(2) per batch, so Python runs once per batch;
 * what it defers goes back to Python with its source address.
 *
 * The input is untrusted: every read is bounded by the span it reads, nothing is
 * written past a buffer sized beforehand, and the code is fuzzed with AddressSanitizer
 * (fuzz/fuzz_speedups.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "blake2s.h"

#if defined(__linux__)
#define SR_HAVE_MMSG 1
#else
#define SR_HAVE_MMSG 0
#endif

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
#define MAX_BINDINGS 32
#define MAX_TALLY 256
#define BATCH 64
#define DGRAM_MAX 65536

typedef struct {
    const char *p;
    Py_ssize_t n;
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
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (!IS(s.p[i], f))
            return 0;
    return 1;
}

static int has_char(span s, char c) { return s.n > 0 && memchr(s.p, c, (size_t)s.n) != NULL; }

static Py_ssize_t find_char(span s, Py_ssize_t from, char c)
{
    for (Py_ssize_t i = from; i < s.n; i++)
        if (s.p[i] == c)
            return i;
    return -1;
}

static Py_ssize_t rfind_char(span s, char c)
{
    for (Py_ssize_t i = s.n - 1; i >= 0; i--)
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
    for (Py_ssize_t i = 0; i < s.n; i++)
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
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= text.n; i++) {
        if (i < text.n && text.p[i] != ';')
            continue;
        if (n >= max)
            return -1;
        span raw = {text.p + start, i - start};
        Py_ssize_t eqpos = find_char(raw, 0, '=');
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
    Py_ssize_t colon = find_char(raw, 0, ':');
    if (colon <= 0)
        return 0;
    span scheme = {raw.p, colon};
    char first = scheme.p[0];
    if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z')))
        return 0;
    for (Py_ssize_t i = 1; i < scheme.n; i++)
        if (!IS(scheme.p[i], C_SCHEME))
            return 0;
    span rest = {raw.p + colon + 1, raw.n - colon - 1};
    if (!ieq(scheme, "sip") && !ieq(scheme, "sips")) {
        if (rest.n == 0)
            return 0;
        for (Py_ssize_t i = 0; i < rest.n; i++)
            if (strchr(" \t<>\"", rest.p[i]) && rest.p[i] != '\0')
                return 0;
        return 1;
    }
    Py_ssize_t at = find_char(rest, 0, '@');
    if (at >= 0) {
        span userinfo = {rest.p, at};
        if (!all_class(userinfo, C_USERINFO))
            return 0;
        rest.p += at + 1;
        rest.n -= at + 1;
    }
    Py_ssize_t i;
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
        Py_ssize_t d = i + 1, port = 0;
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
    for (Py_ssize_t k = 0; k < tail.n; k++)
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
    Py_ssize_t i = 0, lt;
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
        for (Py_ssize_t k = i; k < lt; k++)
            if (!IS_WSP(text.p[k]))
                return 0;
    } else {
        lt = find_char(text, 0, '<');
        Py_ssize_t semi = find_char(text, 0, ';');
        if (!(lt >= 0 && (semi < 0 || lt < semi)))
            lt = -1;
    }
    if (lt >= 0) {
        Py_ssize_t gt = find_char(text, lt, '>');
        if (gt < 0)
            return 0;
        uri_text = strip_wsp((span){text.p + lt + 1, gt - lt - 1});
        rest = strip_wsp((span){text.p + gt + 1, text.n - gt - 1});
    } else {
        Py_ssize_t semi = find_char(text, 0, ';');
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

static Py_ssize_t skip_wsp(span s, Py_ssize_t i)
{
    while (i < s.n && IS_WSP(s.p[i]))
        i++;
    return i;
}

static Py_ssize_t skip_token(span s, Py_ssize_t i)
{
    Py_ssize_t start = i;
    while (i < s.n && IS(s.p[i], C_TOKEN))
        i++;
    return i > start ? i : -1;
}

static int parse_via(span v, via_t *out)
{
    Py_ssize_t i = skip_wsp(v, 0);
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
    Py_ssize_t w = skip_wsp(v, i);
    if (w == i)
        return 0; /* [ \t]+ before sent-by */
    i = w;
    Py_ssize_t host_start = i;
    if (i < v.n && v.p[i] == '[') {
        i++;
        Py_ssize_t s = i;
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
    Py_ssize_t after_host = i;
    Py_ssize_t j = skip_wsp(v, i);
    if (j < v.n && v.p[j] == ':') {
        j = skip_wsp(v, j + 1);
        Py_ssize_t d = j, port = 0;
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
    Py_ssize_t k = skip_wsp(v, after_host);
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
    Py_ssize_t i = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9')
        i++;
    if (i == 0)
        return 0;
    span digits = {s.p, i};
    Py_ssize_t w = skip_wsp(s, i);
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
    for (Py_ssize_t k = 0; k < digits.n; k++)
        number = number * 10 + (unsigned long long)(digits.p[k] - '0');
    if (number > 4294967295ULL)
        return 0;
    *method = m;
    return 1;
}

/* -- the table ------------------------------------------------------------------------ */

static PyTypeObject TableType;

typedef struct {
    PyObject_HEAD
    PyObject *entries; /* bytes key -> (head: bytes, tail: bytes, tally: int) or None */
    PyObject *accept;  /* tuple of bytes: settings.accept as written */
    uint8_t tag_key[32];
    Py_ssize_t tag_key_len;
    Py_ssize_t max_headers, max_line_length, max_message_size, max_entries;
    double max_amplification;
    int accept_any, strict_length;
    int chk_duplicates, chk_cseq_method, chk_expires, chk_max_forwards, chk_require;
    int chk_content_type, chk_content_encoding, chk_content_language;
    Py_ssize_t tally[MAX_TALLY];
    int tallied; /* some tally[k] is not 0: fold() has work */
    PyObject *counters; /* the engine's counters (a dict), or NULL: take_tally() reads them */
    PyObject *keys;     /* list: tally -> (request counter key, response counter key or None) */
    Py_ssize_t deferred[5];
    int last_tally; /* of the last answer() that answered: which rule, for the journal */
} Table;

/* The request as the parser leaves it: what the checks and the echo read. */
typedef struct {
    span line, method, uri;
    span from, to, call_id, cseq, max_forwards, content_type, expires;
    int n_from, n_to, n_call_id, n_cseq, n_max_forwards, n_content_type, n_content_length;
    int n_expires, n_require, n_content_encoding, n_content_language;
    span vias[MAX_VIAS];
    int n_vias;
    Py_ssize_t body_len;
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

/* message.parse_request plus the checks of validation.check_request that a request
 * passes, for the requests this code covers. Returns SR_ANSWERED when the request
 * parsed cleanly and would pass every enabled check, else SR_UNUSUAL. */
static int scan(Table *t, const char *data, Py_ssize_t len, int datagram, req_t *r)
{
    if (len > t->max_message_size)
        return SR_UNUSUAL;
    memset(r, 0, sizeof(*r));
    /* find_header_end: CRLF CRLF, with no bare CR or LF anywhere before it (a bare LF
     * would be a line end to the parser, a bare CR an error). */
    Py_ssize_t head_end = -1;
    for (Py_ssize_t i = 0; i < len; i++) {
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
    Py_ssize_t body_start = head_end + 4;
    Py_ssize_t nlines = 1;
    for (Py_ssize_t i = 0; i < head_end; i++)
        if (data[i] == '\n')
            nlines++;
    if (t->max_headers && nlines > t->max_headers)
        return SR_UNUSUAL; /* the 513 limit could apply: the engine decides */

    /* Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 25.1) */
    Py_ssize_t eol = 0;
    while (eol < head_end && data[eol] != '\r')
        eol++;
    span line = {data, eol};
    if (t->max_line_length && eol > t->max_line_length && head_end > t->max_line_length)
        return SR_UNUSUAL;
    Py_ssize_t sp1 = find_char(line, 0, ' ');
    Py_ssize_t sp2 = sp1 < 0 ? -1 : find_char(line, sp1 + 1, ' ');
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
    Py_ssize_t pos = eol + 2;
    while (pos < head_end + 2) {
        Py_ssize_t end = pos;
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
        Py_ssize_t colon = find_char(hl, 0, ':');
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
            Py_ssize_t start = 0;
            for (Py_ssize_t i = 0; i <= value.n; i++) {
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
            Py_ssize_t n = 0;
            for (Py_ssize_t k = 0; k < d.n; k++)
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
        for (Py_ssize_t k = 0; k < mf.n; k++)
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
            Py_ssize_t semi = find_char(ct, 0, ';');
            if (semi >= 0)
                ct.n = semi;
            ct = strip_wsp(ct);
            if (ct.n > 0) {
                int found = 0;
                Py_ssize_t n = PyTuple_GET_SIZE(t->accept);
                for (Py_ssize_t k = 0; k < n && !found; k++) {
                    PyObject *a = PyTuple_GET_ITEM(t->accept, k);
                    span as = {PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a)};
                    if (as.n == ct.n) {
                        found = 1;
                        for (Py_ssize_t q = 0; q < ct.n; q++) {
                            char c = ct.p[q];
                            if (c >= 'A' && c <= 'Z')
                                c = (char)(c + 32);
                            if (c != as.p[q]) {
                                found = 0;
                                break;
                            }
                        }
                    }
                }
                if (!found)
                    return SR_UNUSUAL;
            }
        }
    }
    return SR_ANSWERED;
}

/* -- the echo: sip/response.py Echo, top_via_value and to_tag ------------------------- */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s, Py_ssize_t n)
{
    if (b->n + n <= b->cap) /* sized beforehand: never false, but never written past */
        memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
}

static void puts_(buf_t *b, const char *s) { put(b, s, (Py_ssize_t)strlen(s)); }
static void puts_span(buf_t *b, span s) { put(b, s.p, s.n); }

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
    via_t *vp = &r->top;
    span value = r->vias[0];
#define via (*vp)
    param *rport = via_param(&via, "rport");
    int wants_rport = rport != NULL && !rport->has_value;
    int unsure;
    int needs_received = wants_rport || !same_ip(via.host, ip, iplen, &unsure);
    if (!wants_rport && unsure)
        return 0;
    if (!needs_received && via_param(&via, "received") == NULL) {
        puts_span(b, value);
        return 1;
    }
    char portbuf[16];
    int portlen = snprintf(portbuf, sizeof portbuf, "%d", port);
    puts_span(b, via.head);
    int have_received = 0;
    for (int k = 0; k < via.nparams; k++) {
        param *p = &via.params[k];
        put(b, ";", 1);
        if (ieq(p->name, "received") && needs_received) {
            puts_(b, "received=");
            put(b, ip, (Py_ssize_t)iplen);
            have_received = 1;
        } else if (ieq(p->name, "rport") && wants_rport) {
            puts_(b, "rport=");
            put(b, portbuf, portlen);
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
        put(b, ip, (Py_ssize_t)iplen);
    }
#undef via
    return 1;
}

/* to_tag: blake2s(call-id \0 from-tag \0 branch \0 cseq-number, key, 8 octets), hex */
static int to_tag(Table *t, req_t *r, char out[16])
{
    span from_tag = r->has_from_tag ? r->from_tag : (span){"", 0};
    span branch = {"", 0};
    param *bp = via_param(&r->top, "branch");
    if (bp != NULL && bp->has_value)
        branch = bp->value;
    span number = r->cseq;
    Py_ssize_t sp = find_char(number, 0, ' ');
    if (sp >= 0)
        number.n = sp;
    sr_b2s_state s;
    sr_b2s_init(&s, 8, t->tag_key, (size_t)t->tag_key_len);
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
    return 1;
}

/* plan.bindings: the Contacts a registrar-like 200 lists, each with its expiry.
 * Returns the octets written, or -1 when the engine must answer (a value this code is
 * not sure how Python reads). ``b`` NULL: only measure. */
static int python_space(char c)
{
    /* str.strip()'s whitespace among latin-1 characters */
    unsigned char u = (unsigned char)c;
    return (u >= 0x09 && u <= 0x0d) || (u >= 0x1c && u <= 0x20) || u == 0x85 || u == 0xa0;
}

static unsigned long long capped_number(span digits)
{
    unsigned long long v = 0;
    for (Py_ssize_t k = 0; k < digits.n; k++) {
        v = v * 10 + (unsigned long long)(digits.p[k] - '0');
        if (v > 4294967295ULL)
            return 4294967295ULL; /* min(int(x), 2**32 - 1) */
    }
    return v;
}

static int any_high(span s)
{
    for (Py_ssize_t k = 0; k < s.n; k++)
        if ((unsigned char)s.p[k] >= 0x80)
            return 1;
    return 0;
}

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
        Py_ssize_t start = 0, i = 0;
        while (i <= v.n) {
            if (i < v.n && v.p[i] == '<') {
                Py_ssize_t end = find_char(v, i, '>');
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
            /* value.strip() would take more than WSP (an NBSP, found by fuzz_speedups.py:
             * checked in the measuring pass too, so that nothing is half written) */
            if (na.bracketed && (python_space(value.p[0]) || python_space(value.p[value.n - 1])))
                return -1;
            if (b == NULL)
                continue;
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
                char num[32];
                int len = snprintf(num, sizeof num, ";expires=%llu", value_expires);
                put(b, num, len);
            }
            puts_(b, "\r\n");
        }
    }
    return count;
}

/* head + echo + tail, or NULL with *why set (no Python error) */
static PyObject *render(Table *t, req_t *r, span head, span tail, span after, int bindings,
                        const char *ip, size_t iplen, int port, int *why)
{
    Py_ssize_t cap = head.n + tail.n + after.n + 256 + 2 * (Py_ssize_t)iplen;
    if (bindings) {
        if (write_bindings(NULL, r) < 0) {
            *why = SR_UNUSUAL;
            return NULL;
        }
        for (int k = 0; k < r->n_contacts; k++)
            cap += r->contacts[k].n + 48 * (MAX_BINDINGS + 1);
    }
    for (int k = 0; k < r->n_vias; k++)
        cap += r->vias[k].n + 8;
    cap += r->from.n + r->to.n + r->call_id.n + r->cseq.n + 64;
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap);
    if (out == NULL)
        return NULL;
    buf_t b = {PyBytes_AS_STRING(out), 0, cap};
    puts_span(&b, head);
    puts_(&b, "Via: ");
    if (!write_top_via(&b, r, ip, iplen, port)) {
        Py_DECREF(out);
        *why = SR_UNUSUAL;
        return NULL;
    }
    puts_(&b, "\r\n");
    for (int k = 1; k < r->n_vias; k++) {
        puts_(&b, "Via: ");
        puts_span(&b, r->vias[k]);
        puts_(&b, "\r\n");
    }
    puts_(&b, "From: ");
    puts_span(&b, r->from);
    puts_(&b, "\r\nTo: ");
    puts_span(&b, r->to);
    if (!r->has_to_tag) {
        char hex[16];
        if (!to_tag(t, r, hex)) {
            Py_DECREF(out);
            *why = SR_UNUSUAL;
            return NULL;
        }
        puts_(&b, ";tag=");
        put(&b, hex, 16);
    }
    puts_(&b, "\r\nCall-ID: ");
    puts_span(&b, r->call_id);
    puts_(&b, "\r\nCSeq: ");
    puts_span(&b, r->cseq);
    puts_(&b, "\r\n");
    puts_span(&b, tail);
    if (bindings) {
        if (write_bindings(&b, r) < 0) { /* cannot happen: the measuring pass said yes */
            Py_DECREF(out);
            *why = SR_UNUSUAL;
            return NULL;
        }
        puts_span(&b, after);
    }
    if (b.n > cap) { /* cannot happen: cap counts every piece */
        Py_DECREF(out);
        *why = SR_UNUSUAL;
        return NULL;
    }
    if (_PyBytes_Resize(&out, b.n) < 0)
        return NULL;
    return out;
}

static PyObject *make_key(int local_id, span line)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, line.n + 2);
    if (key == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(key);
    p[0] = (char)(local_id >> 8);
    p[1] = (char)(local_id & 0xff);
    memcpy(p + 2, line.p, (size_t)line.n);
    return key;
}

/* Add the tallies to the engine's counters (Engine.counters: "request:M", "response:C"),
 * as Engine.handle counts what it answers; -1 with a Python error. */
static int add_count(PyObject *counters, PyObject *key, Py_ssize_t n)
{
    if (key == Py_None)
        return 0;
    PyObject *old = PyDict_GetItemWithError(counters, key);
    if (old == NULL && PyErr_Occurred())
        return -1;
    PyObject *count = PyLong_FromSsize_t(n);
    if (count == NULL)
        return -1;
    PyObject *sum = old ? PyNumber_Add(old, count) : Py_NewRef(count);
    Py_DECREF(count);
    if (sum == NULL)
        return -1;
    int rc = PyDict_SetItem(counters, key, sum);
    Py_DECREF(sum);
    return rc;
}

static int fold(Table *t)
{
    if (!t->tallied || t->counters == NULL || t->keys == NULL)
        return 0;
    t->tallied = 0;
    Py_ssize_t nkeys = PyList_GET_SIZE(t->keys);
    for (Py_ssize_t k = 0; k < MAX_TALLY; k++) {
        Py_ssize_t n = t->tally[k];
        if (n == 0)
            continue;
        if (k >= nkeys) {
            t->tallied = 1; /* no key yet: left for take_tally() */
            continue;
        }
        PyObject *pair = PyList_GET_ITEM(t->keys, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) < 2) {
            PyErr_SetString(PyExc_TypeError, "Table keys: (request key, response key) tuples");
            return -1;
        }
        t->tally[k] = 0;
        if (add_count(t->counters, PyTuple_GET_ITEM(pair, 0), n) < 0 ||
            add_count(t->counters, PyTuple_GET_ITEM(pair, 1), n) < 0)
            return -1;
    }
    return 0;
}

/* One request. Returns SR_ANSWERED with *resp (a new reference; NULL for an ACK that
 * was absorbed) and *tally, a defer reason, or -1 with a Python error set. */
static int answer(Table *t, const char *data, Py_ssize_t len, int datagram, int local_id,
                  const char *ip, size_t iplen, int port, int ack_ok, PyObject **resp,
                  int *tally)
{
    req_t r;
    *resp = NULL;
    if (scan(t, data, len, datagram, &r) != SR_ANSWERED)
        return SR_UNUSUAL;
    if (r.method.n == 3 && memcmp(r.method.p, "ACK", 3) == 0) {
        /* Engine._handle: an ACK is absorbed, never answered; with live transactions
         * it may end one (Timer G), which only the engine knows. */
        if (!ack_ok)
            return SR_UNUSUAL;
        *tally = 0;
        return SR_ANSWERED;
    }
    PyObject *key = make_key(local_id, r.line);
    if (key == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(t->entries, key);
    Py_DECREF(key);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : SR_MISS;
    if (entry == Py_None)
        return SR_LEARNED_NO;
    PyObject *head = PyTuple_GET_ITEM(entry, 0), *tail = PyTuple_GET_ITEM(entry, 1);
    PyObject *after = PyTuple_GET_ITEM(entry, 3);
    int bindings = after != Py_None;
    span after_span = bindings ? (span){PyBytes_AS_STRING(after), PyBytes_GET_SIZE(after)}
                               : (span){"", 0};
    int why = SR_UNUSUAL;
    PyObject *out = render(t, &r, (span){PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head)},
                           (span){PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail)}, after_span,
                           bindings, ip, iplen, port, &why);
    if (out == NULL)
        return PyErr_Occurred() ? -1 : why;
    /* Engine._send: never a reflector (settings.max_amplification) */
    if (datagram && t->max_amplification > 0 &&
        (double)PyBytes_GET_SIZE(out) > t->max_amplification * (double)len) {
        Py_DECREF(out);
        return SR_UNUSUAL;
    }
    *tally = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 2));
    *resp = out;
    return SR_ANSWERED;
}

static void Table_dealloc(Table *self)
{
    Py_XDECREF(self->entries);
    Py_XDECREF(self->accept);
    Py_XDECREF(self->counters);
    Py_XDECREF(self->keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* fuzz fix (fuzz/fuzz_speedups.py): Table.__new__(Table) without __init__ left
 * entries and accept NULL, and every method then dereferenced NULL. A table is born
 * empty instead (max_message_size 0: it defers every request until __init__). */
static PyObject *Table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Table *self = (Table *)PyType_GenericNew(type, args, kwds);
    if (self == NULL)
        return NULL;
    self->entries = PyDict_New();
    self->accept = PyTuple_New(0);
    if (self->entries == NULL || self->accept == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}
/* end of fuzz fix */

static int Table_init(Table *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tag_key", "accept", "max_headers", "max_line_length",
                             "max_message_size", "max_amplification", "checks",
                             "strict_length", "max_entries", NULL};
    Py_buffer key;
    PyObject *accept, *checks;
    int strict_length;
    Py_ssize_t max_entries = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O!nnndO!p|n", kwlist, &key, &PyTuple_Type,
                                     &accept, &self->max_headers, &self->max_line_length,
                                     &self->max_message_size, &self->max_amplification,
                                     &PyDict_Type, &checks, &strict_length, &max_entries))
        return -1;
    if (key.len > 32) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "tag_key: at most 32 octets (a BLAKE2s key)");
        return -1;
    }
    memcpy(self->tag_key, key.buf, (size_t)key.len);
    self->tag_key_len = key.len;
    PyBuffer_Release(&key);
    self->accept_any = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(accept); k++) {
        PyObject *a = PyTuple_GET_ITEM(accept, k);
        if (!PyBytes_Check(a)) {
            PyErr_SetString(PyExc_TypeError, "accept: a tuple of bytes (settings.accept)");
            return -1;
        }
        if (PyBytes_GET_SIZE(a) == 3 && memcmp(PyBytes_AS_STRING(a), "*/*", 3) == 0)
            self->accept_any = 1;
    }
    Py_INCREF(accept);
    Py_XSETREF(self->accept, accept);
    struct { const char *name; int *flag; } named[] = {
        {"duplicate_headers", &self->chk_duplicates}, {"cseq_method", &self->chk_cseq_method},
        {"expires", &self->chk_expires}, {"max_forwards", &self->chk_max_forwards},
        {"require", &self->chk_require}, {"content_type", &self->chk_content_type},
        {"content_encoding", &self->chk_content_encoding},
        {"content_language", &self->chk_content_language},
    };
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        PyObject *v = PyDict_GetItemString(checks, named[k].name);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "checks: no switch %s", named[k].name);
            return -1;
        }
        *named[k].flag = PyObject_IsTrue(v);
        if (*named[k].flag < 0) /* fuzz fix: a switch whose truth raised (SystemError) */
            return -1;
    }
    self->strict_length = strict_length;
    self->max_entries = max_entries;
    PyObject *entries = PyDict_New();
    if (entries == NULL)
        return -1;
    Py_XSETREF(self->entries, entries);
    return 0;
}

static PyObject *Table_learn(Table *self, PyObject *args)
{
    int local_id, tally;
    Py_buffer line;
    PyObject *head, *tail, *after = Py_None;
    if (!PyArg_ParseTuple(args, "iy*OOi|O", &local_id, &line, &head, &tail, &tally, &after))
        return NULL;
    PyObject *key = make_key(local_id, (span){line.buf, line.len});
    PyBuffer_Release(&line);
    if (key == NULL)
        return NULL;
    if (local_id < 0 || local_id > 0xffff || tally < 0 || tally >= MAX_TALLY) {
        Py_DECREF(key);
        PyErr_SetString(PyExc_ValueError, "local_id or tally out of range");
        return NULL;
    }
    PyObject *value;
    if (head == Py_None) {
        value = Py_NewRef(Py_None);
    } else {
        if (!PyBytes_Check(head) || !PyBytes_Check(tail) ||
            (after != Py_None && !PyBytes_Check(after))) {
            Py_DECREF(key);
            PyErr_SetString(PyExc_TypeError,
                            "head, tail and after: bytes (head None: defer; after None: no "
                            "bindings)");
            return NULL;
        }
        value = Py_BuildValue("(OOiO)", head, tail, tally, after);
        if (value == NULL) {
            Py_DECREF(key);
            return NULL;
        }
    }
    if (PyDict_GET_SIZE(self->entries) >= self->max_entries)
        PyDict_Clear(self->entries); /* request lines are the sender's to choose */
    int rc = PyDict_SetItem(self->entries, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Table_bind(Table *self, PyObject *args)
{
    PyObject *counters, *keys;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &counters, &PyList_Type, &keys))
        return NULL;
    Py_INCREF(counters);
    Py_XSETREF(self->counters, counters);
    Py_INCREF(keys);
    Py_XSETREF(self->keys, keys);
    Py_RETURN_NONE;
}

static PyObject *Table_forget(Table *self, PyObject *args)
{
    int local_id;
    Py_buffer line;
    if (!PyArg_ParseTuple(args, "iy*", &local_id, &line))
        return NULL;
    PyObject *key = make_key(local_id, (span){line.buf, line.len});
    PyBuffer_Release(&line);
    if (key == NULL)
        return NULL;
    int rc = PyDict_Contains(self->entries, key);
    if (rc > 0)
        rc = PyDict_DelItem(self->entries, key);
    Py_DECREF(key);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Table_clear(Table *self, PyObject *unused)
{
    PyDict_Clear(self->entries);
    Py_RETURN_NONE;
}

static PyObject *Table_len(Table *self, PyObject *unused)
{
    return PyLong_FromSsize_t(PyDict_GET_SIZE(self->entries));
}

static PyObject *Table_answer(Table *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "ip", "port", "local_id", "datagram", "ack_ok", "count",
                             NULL};
    Py_buffer data;
    const char *ip;
    Py_ssize_t iplen;
    int port, local_id, datagram, ack_ok, count = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*s#iipp|$p", kwlist, &data, &ip, &iplen,
                                     &port, &local_id, &datagram, &ack_ok, &count))
        return NULL;
    PyObject *resp = NULL;
    int tally = 0;
    int rc = answer(self, data.buf, data.len, datagram, local_id, ip, (size_t)iplen, port, ack_ok,
                    &resp, &tally);
    PyBuffer_Release(&data);
    if (rc < 0)
        return NULL;
    if (rc != SR_ANSWERED) {
        if (count)
            self->deferred[rc]++;
        return PyLong_FromLong(rc);
    }
    if (count)
        self->tally[tally]++;
    self->tallied = 1;
    self->last_tally = tally;
    if (count && fold(self) < 0) {
        Py_XDECREF(resp);
        return NULL;
    }
    if (resp == NULL)
        return PyBytes_FromStringAndSize("", 0);
    return resp;
}

/* The length of the message at the start of a stream, as sip/framing.py StreamFramer
 * cuts it (header section + Content-Length), or -1 when the framer should look: no
 * header end yet, no single plain Content-Length line, folding. */
static Py_ssize_t stream_total(const char *data, Py_ssize_t len)
{
    Py_ssize_t head_end = -1;
    for (Py_ssize_t i = 0; i + 3 < len; i++) {
        if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n') {
            head_end = i;
            break;
        }
        if (data[i] == '\n' && i + 1 < len && data[i + 1] == '\n')
            return -1; /* a bare-LF message: the framer's find_header_end decides */
    }
    if (head_end < 0)
        return -1;
    Py_ssize_t found = -1;
    int count = 0;
    Py_ssize_t pos = 0;
    while (pos < head_end) {
        Py_ssize_t end = pos;
        while (end < head_end && data[end] != '\n')
            end++;
        span line = {data + pos, end - pos};
        if (line.n > 0 && line.p[line.n - 1] == '\r')
            line.n--;
        pos = end + 1;
        if (line.n > 0 && IS_WSP(line.p[0]))
            return -1; /* folding: abnf.content_lengths reads continuation lines */
        Py_ssize_t colon = find_char(line, 0, ':');
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
        for (Py_ssize_t k = 0; k < value.n; k++)
            found = found * 10 + (value.p[k] - '0');
    }
    if (count != 1)
        return -1;
    return head_end + 4 + found;
}

/* answer_stream(data, ip, port, local_id, ack_ok, journal)
 *   -> (responses, used, count, records)
 * The complete messages at the start of a TCP/TLS stream (the framer's buffer empty)
 * that the table answers, one after the other; it stops at the first one it does not
 * (incomplete, a keep-alive, anything it defers), which the framer then takes from
 * ``used`` on. records: [(offset, length, tally, response or None)] when journal. */
static PyObject *Table_answer_stream(Table *self, PyObject *args)
{
    Py_buffer data;
    const char *ip;
    Py_ssize_t iplen;
    int port, local_id, ack_ok, journal;
    if (!PyArg_ParseTuple(args, "y*s#iipp", &data, &ip, &iplen, &port, &local_id, &ack_ok,
                          &journal))
        return NULL;
    const char *p = data.buf;
    Py_ssize_t len = data.len, used = 0, count = 0;
    PyObject *parts = PyList_New(0), *records = journal ? PyList_New(0) : Py_NewRef(Py_None);
    if (parts == NULL || records == NULL)
        goto fail;
    while (used < len) {
        if (p[used] == '\r' || p[used] == '\n')
            break; /* keep-alives and stray CRLFs: the framer's */
        Py_ssize_t total = stream_total(p + used, len - used);
        if (total < 0 || total > len - used)
            break;
        PyObject *resp = NULL;
        int tally = 0;
        int rc = answer(self, p + used, total, 0, local_id, ip, (size_t)iplen, port, ack_ok,
                        &resp, &tally);
        if (rc < 0)
            goto fail;
        if (rc != SR_ANSWERED) {
            self->deferred[rc]++;
            break;
        }
        self->tally[tally]++;
        self->tallied = 1;
        count++;
        if (journal) {
            PyObject *item = Py_BuildValue("(nniO)", used, total, tally, resp ? resp : Py_None);
            if (item == NULL || PyList_Append(records, item) < 0) {
                Py_XDECREF(item);
                Py_XDECREF(resp);
                goto fail;
            }
            Py_DECREF(item);
        }
        if (resp != NULL) {
            int bad = PyList_Append(parts, resp);
            Py_DECREF(resp);
            if (bad < 0)
                goto fail;
        }
        used += total;
    }
    PyBuffer_Release(&data);
    if (fold(self) < 0) {
        Py_DECREF(parts);
        Py_DECREF(records);
        return NULL;
    }
    PyObject *empty = PyBytes_FromStringAndSize("", 0);
    if (empty == NULL) {
        Py_DECREF(parts);
        Py_DECREF(records);
        return NULL;
    }
    PyObject *joined = _PyBytes_Join(empty, parts);
    Py_DECREF(empty);
    Py_DECREF(parts);
    if (joined == NULL) {
        Py_DECREF(records);
        return NULL;
    }
    return Py_BuildValue("(NnnN)", joined, used, count, records);
fail:
    PyBuffer_Release(&data);
    Py_XDECREF(parts);
    Py_XDECREF(records);
    return NULL;
}

static PyObject *Table_deferred(Table *self, PyObject *unused)
{
    return Py_BuildValue("{snsnsnsn}", "miss", self->deferred[SR_MISS], "learned_no",
                         self->deferred[SR_LEARNED_NO], "unusual", self->deferred[SR_UNUSUAL],
                         "off", self->deferred[SR_OFF]);
}

/* -- batched UDP ----------------------------------------------------------------------- */

static int sockaddr_text(const struct sockaddr_storage *sa, char *ip, size_t cap, int *port)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)cap) == NULL)
            return 0;
        *port = ntohs(s4->sin_port);
        return 1;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (s6->sin6_scope_id != 0)
            return 0; /* Python writes "%scope": the engine's Source names it */
        if (inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)cap) == NULL)
            return 0;
        *port = ntohs(s6->sin6_port);
        return 1;
    }
    return 0;
}

#if SR_HAVE_MMSG
static char rx_bufs[BATCH][DGRAM_MAX];

/* serve_udp(fd, table, local_id, enabled, ack_ok, journal, max_batches)
 *   -> (deferred, journal, unsent, received)
 * deferred: [(data, (ip, port), reason)], in arrival order;
 * journal:  [(data, (ip, port), tally, response)] for what was answered here, or None;
 * unsent:   [(response, (ip, port))] that sendmmsg could not take now (the caller
 *           queues them), or None. */
static PyObject *serve_udp(PyObject *module, PyObject *args)
{
    int fd, local_id, enabled, ack_ok, journal, max_batches;
    PyObject *table;
    if (!PyArg_ParseTuple(args, "iOipppi", &fd, &table, &local_id, &enabled, &ack_ok,
                          &journal, &max_batches))
        return NULL;
    if (table == Py_None) {
        enabled = 0; /* read in batches, answer nothing here */
        journal = 0;
    } else if (!PyObject_TypeCheck(table, &TableType)) {
        PyErr_SetString(PyExc_TypeError, "serve_udp: table must be a Table or None");
        return NULL;
    }
    Table *t = table == Py_None ? NULL : (Table *)table;
    struct mmsghdr rx[BATCH], tx[BATCH];
    struct iovec rx_iov[BATCH], tx_iov[BATCH];
    struct sockaddr_storage rx_addr[BATCH];
    PyObject *tx_obj[BATCH];
    PyObject *deferred = PyList_New(0), *jlist = journal ? PyList_New(0) : Py_NewRef(Py_None);
    PyObject *unsent = Py_NewRef(Py_None);
    Py_ssize_t received = 0;
    if (deferred == NULL || jlist == NULL)
        goto fail;
    for (int batch = 0; batch < max_batches; batch++) {
        for (int i = 0; i < BATCH; i++) {
            rx_iov[i].iov_base = rx_bufs[i];
            rx_iov[i].iov_len = DGRAM_MAX;
            memset(&rx[i].msg_hdr, 0, sizeof(rx[i].msg_hdr));
            rx[i].msg_hdr.msg_iov = &rx_iov[i];
            rx[i].msg_hdr.msg_iovlen = 1;
            rx[i].msg_hdr.msg_name = &rx_addr[i];
            rx[i].msg_hdr.msg_namelen = sizeof(rx_addr[i]);
            /* fuzz fix: a datagram with no source address (msg_namelen 0: a Unix
             * socketpair) left rx_addr as an earlier call wrote it, and its stale
             * source was reported; AF_UNSPEC is named by nobody, so it defers. */
            rx_addr[i].ss_family = AF_UNSPEC;
        }
        int n = recvmmsg(fd, rx, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break; /* EAGAIN: drained; an ICMP error (ECONNREFUSED) ends the batch too */
        received += n;
        int ntx = 0;
        for (int i = 0; i < n; i++) {
            const char *data = rx_bufs[i];
            Py_ssize_t len = (Py_ssize_t)rx[i].msg_len;
            char ip[INET6_ADDRSTRLEN];
            int port = 0;
            int have_addr = sockaddr_text(&rx_addr[i], ip, sizeof ip, &port);
            int rc = SR_OFF;
            PyObject *resp = NULL;
            int tally = 0;
            if (!have_addr) {
                rc = SR_UNUSUAL;
            } else if (rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
                rc = SR_UNUSUAL;
                len = DGRAM_MAX;
            } else if (enabled) {
                rc = answer(t, data, len, 1, local_id, ip, strlen(ip), port, ack_ok, &resp,
                            &tally);
                if (rc < 0)
                    goto fail_batch;
            }
            if (rc == SR_ANSWERED) {
                t->tally[tally]++; /* enabled, so t is a Table */
                t->tallied = 1;
                if (journal) {
                    PyObject *item = Py_BuildValue("(y#(si)iO)", data, len, ip, port, tally,
                                                   resp ? resp : Py_None);
                    if (item == NULL || PyList_Append(jlist, item) < 0) {
                        Py_XDECREF(item);
                        Py_XDECREF(resp);
                        goto fail_batch;
                    }
                    Py_DECREF(item);
                }
                if (resp != NULL) {
                    tx_obj[ntx] = resp;
                    tx_iov[ntx].iov_base = PyBytes_AS_STRING(resp);
                    tx_iov[ntx].iov_len = (size_t)PyBytes_GET_SIZE(resp);
                    memset(&tx[ntx].msg_hdr, 0, sizeof(tx[ntx].msg_hdr));
                    tx[ntx].msg_hdr.msg_iov = &tx_iov[ntx];
                    tx[ntx].msg_hdr.msg_iovlen = 1;
                    tx[ntx].msg_hdr.msg_name = &rx_addr[i];
                    tx[ntx].msg_hdr.msg_namelen = rx[i].msg_hdr.msg_namelen;
                    ntx++;
                }
                continue;
            }
            if (t != NULL)
                t->deferred[rc]++;
            PyObject *item;
            if (have_addr) {
                item = Py_BuildValue("(y#(si)i)", data, len, ip, port, rc);
            } else {
                /* an address only Python can name (IPv6 with a scope): let it */
                PyObject *addr = PyBytes_FromStringAndSize((const char *)&rx_addr[i],
                                                           rx[i].msg_hdr.msg_namelen);
                item = addr ? Py_BuildValue("(y#Ni)", data, len, addr, rc) : NULL;
            }
            if (item == NULL || PyList_Append(deferred, item) < 0) {
                Py_XDECREF(item);
                goto fail_batch;
            }
            Py_DECREF(item);
        }
        {
            int sent = 0;
            while (sent < ntx) {
                int m = sendmmsg(fd, tx + sent, (unsigned)(ntx - sent), MSG_DONTWAIT);
                if (m <= 0) {
                    if (m < 0 && errno == EINTR)
                        continue;
                    break;
                }
                sent += m;
            }
            for (int k = sent; k < ntx; k++) {
                if (unsent == Py_None) {
                    Py_DECREF(unsent);
                    unsent = PyList_New(0);
                    if (unsent == NULL)
                        goto fail_batch;
                }
                char ip[INET6_ADDRSTRLEN];
                int port = 0;
                sockaddr_text((struct sockaddr_storage *)tx[k].msg_hdr.msg_name, ip, sizeof ip,
                              &port);
                PyObject *item = Py_BuildValue("(O(si))", tx_obj[k], ip, port);
                if (item == NULL || PyList_Append(unsent, item) < 0) {
                    Py_XDECREF(item);
                    goto fail_batch;
                }
                Py_DECREF(item);
            }
            for (int k = 0; k < ntx; k++)
                Py_DECREF(tx_obj[k]);
            ntx = 0;
        }
        if (n < BATCH)
            break;
        continue;
    fail_batch:
        for (int k = 0; k < ntx; k++)
            Py_DECREF(tx_obj[k]);
        goto fail;
    }
    if (t != NULL && fold(t) < 0)
        goto fail;
    return Py_BuildValue("(NNNn)", deferred, jlist, unsent, received);
fail:
    Py_XDECREF(deferred);
    Py_XDECREF(jlist);
    Py_XDECREF(unsent);
    return NULL;
}
#endif

static PyObject *blake2s_tag(PyObject *module, PyObject *args)
{
    Py_buffer key, material;
    if (!PyArg_ParseTuple(args, "y*y*", &key, &material))
        return NULL;
    if (key.len > 32) {
        PyBuffer_Release(&key);
        PyBuffer_Release(&material);
        PyErr_SetString(PyExc_ValueError, "key: at most 32 octets");
        return NULL;
    }
    sr_b2s_state s;
    sr_b2s_init(&s, 8, key.buf, (size_t)key.len);
    sr_b2s_update(&s, material.buf, (size_t)material.len);
    uint8_t digest[8];
    sr_b2s_final(&s, digest);
    PyBuffer_Release(&key);
    PyBuffer_Release(&material);
    return PyBytes_FromStringAndSize((const char *)digest, 8);
}

static PyMethodDef Table_methods[] = {
    {"learn", (PyCFunction)Table_learn, METH_VARARGS,
     "learn(local_id, request_line, head, tail, tally, after=None): answer this request line "
     "on this listener with head + echo + tail (+ the request's Contact bindings + after, "
     "when after is given); head None: always defer it"},
    {"answer", (PyCFunction)(void (*)(void))Table_answer, METH_VARARGS | METH_KEYWORDS,
     "answer(data, ip, port, local_id, datagram, ack_ok, *, count=True) -> bytes (b'' for an "
     "absorbed ACK) or an int: why it was deferred"},
    {"bind", (PyCFunction)Table_bind, METH_VARARGS,
     "bind(counters, keys): add what is answered to the dict counters, by keys[tally] = "
     "(request key, response key or None), at the end of every call"},
    {"answer_stream", (PyCFunction)Table_answer_stream, METH_VARARGS,
     "answer_stream(data, ip, port, local_id, ack_ok, journal) -> (responses, used, count, "
     "records): "
     "the complete messages at the start of a stream that the table answers"},
    {"forget", (PyCFunction)Table_forget, METH_VARARGS,
     "forget(local_id, request_line): learn it again from the next request"},
    {"clear", (PyCFunction)Table_clear, METH_NOARGS, "forget every learned request line"},
    {"size", (PyCFunction)Table_len, METH_NOARGS, "how many request lines are learned"},
    {"deferred", (PyCFunction)Table_deferred, METH_NOARGS, "deferral counts by reason"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Table_members[] = {
    {"last_tally", T_INT, offsetof(Table, last_tally), READONLY,
     "the tally of the last request answer() answered (0: an absorbed ACK)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipresponder._speedups.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled answers of one engine's scenario, by listener and request line.",
    .tp_new = Table_new, /* fuzz fix: was PyType_GenericNew (NULL entries) */
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
    .tp_members = Table_members,
};

static PyMethodDef module_methods[] = {
#if SR_HAVE_MMSG
    {"serve_udp", serve_udp, METH_VARARGS,
     "serve_udp(fd, table, local_id, enabled, ack_ok, journal, max_batches) -> "
     "(deferred, journal, unsent, received)"},
#endif
    {"blake2s_tag", blake2s_tag, METH_VARARGS, "blake2s(material, key=key, digest_size=8)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "sipresponder._speedups",
    "The compiled request path (see sipresponder/uas/compiled.py).", -1, module_methods,
};

/* The names of uas/validation.py CHECKS whose effect scan() reproduces: it checks
 * them as Python does, defers whatever they could reject, or (version, method,
 * uri_scheme) leaves them to the learned request line, which the engine took first.
 * "accept" only shapes a body, and the table learns no answer with one. A check
 * missing here switches the compiled path off for a scenario that enables it
 * (uas/fast.py scenario_reason: unmirrored-check). */
static const char *const mirrored_checks[] = {
    "version", "content_length", "duplicate_headers", "method", "uri_scheme", "cseq_method",
    "expires", "max_forwards", "require", "content_type", "content_encoding",
    "content_language", "accept",
};

static int add_checks(PyObject *m)
{
    size_t n = sizeof(mirrored_checks) / sizeof(mirrored_checks[0]);
    PyObject *names = PyTuple_New((Py_ssize_t)n);
    if (names == NULL)
        return -1;
    for (size_t k = 0; k < n; k++) {
        PyObject *name = PyUnicode_FromString(mirrored_checks[k]);
        if (name == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)k, name);
    }
    int rc = PyModule_AddObjectRef(m, "CHECKS", names);
    Py_DECREF(names);
    return rc;
}

PyMODINIT_FUNC PyInit__speedups(void)
{
    init_classes();
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0 ||
        PyModule_AddIntConstant(m, "ANSWERED", SR_ANSWERED) < 0 ||
        PyModule_AddIntConstant(m, "MISS", SR_MISS) < 0 ||
        PyModule_AddIntConstant(m, "LEARNED_NO", SR_LEARNED_NO) < 0 ||
        PyModule_AddIntConstant(m, "UNUSUAL", SR_UNUSUAL) < 0 ||
        PyModule_AddIntConstant(m, "OFF", SR_OFF) < 0 ||
        PyModule_AddIntConstant(m, "HAVE_MMSG", SR_HAVE_MMSG) < 0 ||
        PyModule_AddIntConstant(m, "BATCH", BATCH) < 0 ||
        PyModule_AddIntConstant(m, "MAX_TALLY", MAX_TALLY) < 0 ||
        add_checks(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
