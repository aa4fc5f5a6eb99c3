/* The UDP batch reader: serve_udp() reads a listener's datagrams with recvmmsg(2)
 * and answers the ones the table knows with one sendmmsg(2) per batch, so that Python
 * runs once per batch (transport/batch.py); what it defers goes back to Python with
 * its source address. Linux only (SR_HAVE_MMSG). Needs Python.h.
 */
#ifndef SR_UDP_H
#define SR_UDP_H

#include <errno.h>
#include <sys/types.h>

#include "table.h"

#if defined(__linux__)
#define SR_HAVE_MMSG 1
#else
#define SR_HAVE_MMSG 0
#endif

#define BATCH 64
#define DGRAM_MAX 65536

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
static PyObject *serve_udp(PyObject *Py_UNUSED(module), PyObject *args)
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
            /* A datagram with no source address (msg_namelen 0: a Unix socketpair)
             * leaves rx_addr as it was: AF_UNSPEC is named by nobody, so it defers
             * rather than take a source an earlier datagram left. */
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

#endif /* SR_UDP_H */
