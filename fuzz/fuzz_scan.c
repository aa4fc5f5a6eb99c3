/* libFuzzer target for the compiled path's scanner and echo alone, in pure C
 * (sipresponder/csrc/scan.h and echo.h include no Python.h), under AddressSanitizer
 * and UndefinedBehaviorSanitizer. fuzz/build_scan.sh builds it; fuzz/README.md says
 * how to run it. One input is one message, as the seeds are (the torture corpus,
 * fuzz/seeds/, fuzz/seeds-speedups/); the rules it is scanned under vary with its
 * length, so that no seed changes meaning.
 *
 * What it checks, beyond the sanitizers' own findings (each a crash):
 * - scan() returns SR_ANSWERED or SR_UNUSUAL, and every span it fills lies inside
 *   the input;
 * - for an answered request, the echo's measuring pass and writing pass agree: the
 *   same verdict and exactly the measured length, written inside the buffer;
 * - stream_total() is -1 or a length past the header section's CRLF CRLF.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"
#include "scan.h"

static const char *base;
static ptrdiff_t base_len;

static void inside(span s)
{
    if (s.n < 0 || (s.n > 0 && (s.p < base || s.p + s.n > base + base_len)))
        abort();
}

static void check_spans(const req_t *r)
{
    inside(r->line);
    inside(r->method);
    inside(r->uri);
    inside(r->from);
    inside(r->to);
    inside(r->call_id);
    inside(r->cseq);
    if (r->n_vias < 1 || r->n_vias > MAX_VIAS || r->n_contacts > MAX_CONTACT_ROWS)
        abort();
    for (int k = 0; k < r->n_vias; k++)
        inside(r->vias[k]);
    for (int k = 0; k < r->n_contacts; k++)
        inside(r->contacts[k]);
    inside(r->top.head);
    inside(r->top.host);
    if (r->top.nparams < 0 || r->top.nparams > MAX_PARAMS)
        abort();
    for (int k = 0; k < r->top.nparams; k++) {
        inside(r->top.params[k].name);
        inside(r->top.params[k].value);
    }
    if (r->has_to_tag)
        inside(r->to_tag);
    if (r->has_from_tag)
        inside(r->from_tag);
}

static void check_echo(req_t *r, unsigned variant)
{
    static const uint8_t key[] = "fuzz-scan tag key";
    echo_in in = {
        .head = {"SIP/2.0 200 OK\r\n", 16},
        .tail = {"Content-Length: 0\r\n\r\n", 21},
        .after = {"\r\n", 2},
        .bindings = (variant & 2) != 0,
        .ip = (variant & 4) ? "::1" : "192.0.2.7",
        .iplen = (variant & 4) ? 3 : 9,
        .port = 5060,
        .tag_key = key,
        .tag_key_len = sizeof key - 1,
    };
    buf_t measure = {NULL, 0, 0};
    int ok = echo(&measure, &in, r);
    if (!ok)
        return;
    if (measure.n <= 0)
        abort();
    char *out = malloc((size_t)measure.n);
    if (out == NULL)
        return;
    buf_t b = {out, 0, measure.n};
    if (!echo(&b, &in, r) || b.n != measure.n)
        abort();
    if (memcmp(out, "SIP/2.0 200 OK\r\nVia: ", 21) != 0)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init_classes();
        ready = 1;
    }
    if (size > 1 << 20)
        return 0;
    base = (const char *)data;
    base_len = (ptrdiff_t)size;
    unsigned variant = (unsigned)(size % 8);
    static const span accept[] = {{"application/sdp", 15}, {"text/plain", 10}};
    sr_rules rules = {
        .max_headers = (variant & 1) ? 0 : 64,
        .max_line_length = (variant & 1) ? 0 : 256,
        .max_message_size = (variant & 1) ? 65535 : 4096,
        .accept_any = variant == 6,
        .accept = accept,
        .n_accept = 2,
        .chk_cseq_method = 1,
        .chk_expires = 1,
        .chk_max_forwards = (variant & 2) != 0,
        .chk_content_type = 1,
        .chk_content_encoding = 1,
        .chk_content_language = (variant & 4) != 0,
    };
    req_t r;
    int rc = scan(&rules, base, base_len, (int)(variant & 1), &r);
    if (rc == SR_ANSWERED) {
        check_spans(&r);
        check_echo(&r, variant);
    } else if (rc != SR_UNUSUAL) {
        abort();
    }
    ptrdiff_t total = stream_total(base, base_len);
    if (total != -1 && total < 4)
        abort();
    return 0;
}
