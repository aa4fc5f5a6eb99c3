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
 * definition of behaviour. Every accepting branch mirrors a named Python function
 * (ARCHITECTURE.md has the table); the differential tests (tests/differential/)
 * compare the two on the torture corpus, the fuzz corpora, generated requests and
 * every bundled scenario.
 *
 * One translation unit, one header per concern, each included once, in this order:
 *   scan.h   the scanner and the checks (pure C: no Python.h; fuzz/fuzz_scan.c)
 *   echo.h   the echo builder, a measuring pass then a writing pass (pure C)
 *   table.h  the Table type: learned answers, answer(), answer_stream()
 *   udp.h    serve_udp(): recvmmsg/sendmmsg batches
 * and here the module: its constants, CHECKS and blake2s_tag.
 *
 * The input is untrusted: every read is bounded by the span it reads, nothing is
 * written past a buffer sized beforehand, and the code is fuzzed with AddressSanitizer
 * (fuzz/README.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "scan.h"
#include "echo.h"
#include "table.h"
#include "udp.h"

static PyObject *blake2s_tag(PyObject *Py_UNUSED(module), PyObject *args)
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
    PyModuleDef_HEAD_INIT,
    .m_name = "sipresponder._speedups",
    .m_doc = "The compiled request path (see sipresponder/uas/compiled.py).",
    .m_size = -1,
    .m_methods = module_methods,
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

