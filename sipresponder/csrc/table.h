/* The Table type: the compiled answers of one engine's scenario, by listener and
 * request line, as uas/fast.py FastPath teaches them; answer() is the request path.
 * Needs Python.h (csrc/speedups.c includes it first).
 */
#ifndef SR_TABLE_H
#define SR_TABLE_H

#include "echo.h"
#include "scan.h"

#define MAX_TALLY 256

static PyTypeObject TableType;

typedef struct {
    PyObject_HEAD
    PyObject *entries; /* bytes key -> (head: bytes, tail: bytes, tally: int) or None */
    PyObject *accept;  /* tuple of bytes: settings.accept as written; rules.accept reads it */
    span *accept_spans;
    sr_rules rules;
    uint8_t tag_key[32];
    Py_ssize_t tag_key_len;
    Py_ssize_t max_entries;
    double max_amplification;
    int strict_length;
    /* Read for their names' sake; scan() defers a repeated header or a Require
     * whatever these say (the engine decides). */
    int chk_duplicates, chk_require;
    Py_ssize_t tally[MAX_TALLY];
    int tallied; /* some tally[k] is not 0: fold() has work */
    PyObject *counters; /* the engine's counters (a dict), or NULL until bind() */
    PyObject *keys;     /* list: tally -> (request counter key, response counter key or None) */
    Py_ssize_t deferred[5];
    int last_tally; /* of the last answer() that answered: which rule, for the journal */
} Table;

/* head + echo + tail, or NULL with *why set (no Python error): measured, then
 * written into a bytes object of exactly that size (csrc/echo.h) */
static PyObject *render(req_t *r, const echo_in *in, int *why)
{
    buf_t measure = {NULL, 0, 0};
    if (!echo(&measure, in, r)) {
        *why = SR_UNUSUAL;
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, measure.n);
    if (out == NULL)
        return NULL;
    buf_t b = {PyBytes_AS_STRING(out), 0, measure.n};
    (void)echo(&b, in, r); /* the same branches as the measuring pass: it fits exactly */
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
            t->tallied = 1; /* no key yet: counted once bind() names it */
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
    if (scan(&t->rules, data, len, datagram, &r) != SR_ANSWERED)
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
    echo_in in = {
        .head = {PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head)},
        .tail = {PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail)},
        .after = bindings ? (span){PyBytes_AS_STRING(after), PyBytes_GET_SIZE(after)}
                          : (span){"", 0},
        .bindings = bindings,
        .ip = ip,
        .iplen = iplen,
        .port = port,
        .tag_key = t->tag_key,
        .tag_key_len = (size_t)t->tag_key_len,
    };
    int why = SR_UNUSUAL;
    PyObject *out = render(&r, &in, &why);
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
    PyMem_Free(self->accept_spans);
    Py_XDECREF(self->counters);
    Py_XDECREF(self->keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A table is born empty, so that Table.__new__(Table) without __init__ is safe: it
 * defers every request (max_message_size 0) until __init__. */
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

static int Table_init(Table *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tag_key", "accept", "max_headers", "max_line_length",
                             "max_message_size", "max_amplification", "checks",
                             "strict_length", "max_entries", NULL};
    Py_buffer key;
    PyObject *accept, *checks;
    int strict_length;
    Py_ssize_t max_headers, max_line_length, max_message_size, max_entries = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O!nnndO!p|n", kwlist, &key, &PyTuple_Type,
                                     &accept, &max_headers, &max_line_length,
                                     &max_message_size, &self->max_amplification,
                                     &PyDict_Type, &checks, &strict_length, &max_entries))
        return -1;
    sr_rules *rules = &self->rules;
    rules->max_headers = max_headers;
    rules->max_line_length = max_line_length;
    rules->max_message_size = max_message_size;
    if (key.len > 32) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "tag_key: at most 32 octets (a BLAKE2s key)");
        return -1;
    }
    memcpy(self->tag_key, key.buf, (size_t)key.len);
    self->tag_key_len = key.len;
    PyBuffer_Release(&key);
    Py_ssize_t n_accept = PyTuple_GET_SIZE(accept);
    span *spans = PyMem_New(span, (size_t)n_accept + 1);
    if (spans == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int accept_any = 0;
    for (Py_ssize_t k = 0; k < n_accept; k++) {
        PyObject *a = PyTuple_GET_ITEM(accept, k);
        if (!PyBytes_Check(a)) {
            PyMem_Free(spans);
            PyErr_SetString(PyExc_TypeError, "accept: a tuple of bytes (settings.accept)");
            return -1;
        }
        spans[k] = (span){PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a)};
        if (spans[k].n == 3 && memcmp(spans[k].p, "*/*", 3) == 0)
            accept_any = 1;
    }
    /* The spans point into the tuple's bytes, which the table holds from here on. */
    Py_INCREF(accept);
    Py_XSETREF(self->accept, accept);
    PyMem_Free(self->accept_spans);
    self->accept_spans = spans;
    rules->accept = spans;
    rules->n_accept = n_accept;
    rules->accept_any = accept_any;
    struct { const char *name; int *flag; } named[] = {
        {"duplicate_headers", &self->chk_duplicates}, {"cseq_method", &rules->chk_cseq_method},
        {"expires", &rules->chk_expires}, {"max_forwards", &rules->chk_max_forwards},
        {"require", &self->chk_require}, {"content_type", &rules->chk_content_type},
        {"content_encoding", &rules->chk_content_encoding},
        {"content_language", &rules->chk_content_language},
    };
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        PyObject *v = PyDict_GetItemString(checks, named[k].name);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "checks: no switch %s", named[k].name);
            return -1;
        }
        *named[k].flag = PyObject_IsTrue(v);
        if (*named[k].flag < 0) /* the switch's truth raised: that error */
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

static PyObject *Table_clear(Table *self, PyObject *Py_UNUSED(unused))
{
    PyDict_Clear(self->entries);
    Py_RETURN_NONE;
}

static PyObject *Table_len(Table *self, PyObject *Py_UNUSED(unused))
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

static PyObject *Table_deferred(Table *self, PyObject *Py_UNUSED(unused))
{
    return Py_BuildValue("{snsnsnsn}", "miss", self->deferred[SR_MISS], "learned_no",
                         self->deferred[SR_LEARNED_NO], "unusual", self->deferred[SR_UNUSUAL],
                         "off", self->deferred[SR_OFF]);
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
    .tp_new = Table_new,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
    .tp_members = Table_members,
};


#endif /* SR_TABLE_H */
