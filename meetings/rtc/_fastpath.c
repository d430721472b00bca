/*
 * The SFU's per-packet fan-out in C: rewrite a publisher's RTP header for each subscriber slot,
 * SRTP-protect it in place and send it, one call per incoming packet.
 *
 * meetings/rtc/forwarder.py has the same logic in Python (the reference, and the fallback where
 * this module cannot be built); tests/rtc/test_forwarder.py runs every forwarding test on both.
 * Everything runs on the event loop thread with the GIL held: no threads, no callbacks into
 * Python on the fast path. What is not the common case (the subscriber's queue is paced or
 * backed up, the connection is not bound yet, a send fails) goes to the Python slow path,
 * ``DownlinkQueue.push``.
 *
 * Types:
 *   Wire  - one subscriber connection's send path: libsrtp's srtp_protect (a function pointer
 *           taken from pylibsrtp, so nothing here links to libsrtp), the SRTP session and its
 *           buffer, the UDP socket and the remote address.
 *   Slot  - one subscriber sender: sequence/timestamp rewriting, the header templates, the
 *           retransmission history (video), counters. Subclassed in Python (SlotForwarder).
 *   fanout(sinks, ...) - forward one incoming packet to every slot in ``sinks``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HISTORY 256
#define MAX_HEADER 64

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

/* ---- Wire ----------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    protect_fn protect;
    void *ctx;
    unsigned char *buf;
    Py_ssize_t limit;
    PyObject *keep; /* what owns ctx and buf (the pylibsrtp session): kept alive while bound */
    PyObject *sock; /* its fileno() is read per send: -1 once the socket is closed */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int bound;
    int direct; /* the subscriber's queue is empty: slots may send straight away (within the budget) */
    /* the pacer's token bucket (DownlinkQueue._budget), here so that slots check it without Python */
    int paced;
    double rate, tokens, refilled;
    unsigned long long packets, bytes, fast_packets, fast_bytes, dropped;
} Wire;

#define WIRE_OVERHEAD 38 /* forwarder.WIRE_OVERHEAD: IPv4 20, UDP 8, SRTP tag 10 */

/* DownlinkQueue._budget, the same arithmetic in the same order (doubles both): may ``size``
   bytes leave at ``now``? Refills the bucket; takes the bytes when they may. */
static int
wire_budget(Wire *w, double size, double now, double *before)
{
    if (!w->paced)
        return 1;
    double burst = w->rate / 8 * 0.05; /* 50 ms of data */
    double filled = w->tokens + (now - w->refilled) * w->rate / 8;
    w->tokens = burst < filled ? burst : filled;
    w->refilled = now;
    if (w->tokens >= size || w->tokens >= burst) {
        if (before != NULL)
            *before = w->tokens;
        w->tokens -= size;
        return 1;
    }
    return 0;
}

/* DownlinkQueue._debit: an audio packet's ``size`` bytes leave regardless and come out of the
   bucket, down to a second's debt. Returns the tokens before (to restore if not sent). */
static double
wire_debit(Wire *w, double size, double now)
{
    if (!w->paced)
        return w->tokens;
    double burst = w->rate / 8 * 0.05;
    double filled = w->tokens + (now - w->refilled) * w->rate / 8;
    double before = burst < filled ? burst : filled;
    double debt = before - size, floor = -w->rate / 8;
    w->tokens = debt < floor ? floor : debt;
    w->refilled = now;
    return before;
}

enum { SENT = 0, NOT_CONNECTED = 1, TOO_LONG = 2, PROTECT_FAILED = 3, DROPPED = 4 };

/* header, then an optional rewritten start of the payload (mid), then the payload's rest. */
static int
wire_send_raw3(Wire *w, const unsigned char *header, Py_ssize_t hlen, const unsigned char *mid, Py_ssize_t mlen,
               const char *payload, Py_ssize_t plen)
{
    if (!w->bound)
        return NOT_CONNECTED;
    int fd = PyObject_AsFileDescriptor(w->sock);
    if (fd < 0) {
        PyErr_Clear();
        return NOT_CONNECTED;
    }
    Py_ssize_t n = hlen + mlen + plen;
    if (n > w->limit)
        return TOO_LONG;
    memcpy(w->buf, header, (size_t)hlen);
    if (mlen > 0)
        memcpy(w->buf + hlen, mid, (size_t)mlen);
    memcpy(w->buf + hlen + mlen, payload, (size_t)plen);
    int len = (int)n;
    if (w->protect(w->ctx, w->buf, &len) != 0)
        return PROTECT_FAILED;
    ssize_t r;
    do {
        r = sendto(fd, w->buf, (size_t)len, 0, (struct sockaddr *)&w->addr, w->addrlen);
    } while (r < 0 && errno == EINTR);
    if (r < 0) { /* as asyncio does for datagrams: one that cannot be sent now is lost */
        w->dropped++;
        return DROPPED;
    }
    w->packets++;
    w->bytes += (unsigned long long)len;
    return SENT;
}

static int
wire_send_raw(Wire *w, const unsigned char *header, Py_ssize_t hlen, const char *payload, Py_ssize_t plen)
{
    return wire_send_raw3(w, header, hlen, NULL, 0, payload, plen);
}

static void
wire_unbind(Wire *w)
{
    w->bound = 0;
    w->protect = NULL;
    w->ctx = NULL;
    w->buf = NULL;
    w->limit = 0;
    Py_CLEAR(w->keep);
    Py_CLEAR(w->sock);
}

static int
Wire_traverse(Wire *w, visitproc visit, void *arg)
{
    Py_VISIT(w->keep);
    Py_VISIT(w->sock);
    return 0;
}

static int
Wire_clear(Wire *w)
{
    wire_unbind(w);
    return 0;
}

static void
Wire_dealloc(Wire *w)
{
    PyObject_GC_UnTrack(w);
    wire_unbind(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *
Wire_bind(Wire *w, PyObject *args)
{
    unsigned long long protect, ctx, buf;
    Py_ssize_t limit;
    PyObject *keep, *sock;
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "KKKnOOsi", &protect, &ctx, &buf, &limit, &keep, &sock, &host, &port))
        return NULL;
    if (!protect || !ctx || !buf || limit <= 0) {
        PyErr_SetString(PyExc_ValueError, "bind() needs the protect function, a context and a buffer");
        return NULL;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        addrlen = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        addrlen = sizeof *v6;
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
        return NULL;
    }
    wire_unbind(w);
    w->protect = (protect_fn)(uintptr_t)protect;
    w->ctx = (void *)(uintptr_t)ctx;
    w->buf = (unsigned char *)(uintptr_t)buf;
    w->limit = limit;
    w->keep = Py_NewRef(keep);
    w->sock = Py_NewRef(sock);
    w->addr = addr;
    w->addrlen = addrlen;
    w->bound = 1;
    Py_RETURN_NONE;
}

static PyObject *
Wire_unbind(Wire *w, PyObject *Py_UNUSED(ignored))
{
    wire_unbind(w);
    Py_RETURN_NONE;
}

static PyObject *
Wire_send(Wire *w, PyObject *args)
{
    Py_buffer header, payload;
    if (!PyArg_ParseTuple(args, "y*y*", &header, &payload))
        return NULL;
    int rc = wire_send_raw(w, header.buf, header.len, payload.buf, payload.len);
    PyBuffer_Release(&header);
    PyBuffer_Release(&payload);
    switch (rc) {
    case NOT_CONNECTED:
        PyErr_SetString(PyExc_ConnectionError, "Cannot send encrypted RTP, not connected");
        return NULL;
    case TOO_LONG:
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return NULL;
    case PROTECT_FAILED:
        PyErr_SetString(PyExc_ConnectionError, "SRTP protect failed");
        return NULL;
    default:
        Py_RETURN_NONE;
    }
}

static PyObject *
Wire_set_rate(Wire *w, PyObject *args)
{
    PyObject *rate;
    double now;
    if (!PyArg_ParseTuple(args, "Od", &rate, &now))
        return NULL;
    if (rate == Py_None) {
        w->paced = 0;
        Py_RETURN_NONE;
    }
    double r = PyFloat_AsDouble(rate);
    if (r == -1.0 && PyErr_Occurred())
        return NULL;
    if (!w->paced) {
        w->tokens = 0.0;
        w->refilled = now;
    }
    w->paced = 1;
    w->rate = r;
    Py_RETURN_NONE;
}

static PyObject *
Wire_budget(Wire *w, PyObject *args)
{
    double size, now;
    if (!PyArg_ParseTuple(args, "dd", &size, &now))
        return NULL;
    return PyBool_FromLong(wire_budget(w, size, now, NULL));
}

static PyObject *
Wire_debit(Wire *w, PyObject *args)
{
    double size, now;
    if (!PyArg_ParseTuple(args, "dd", &size, &now))
        return NULL;
    wire_debit(w, size, now);
    Py_RETURN_NONE;
}

static PyMethodDef Wire_methods[] = {
    {"bind", (PyCFunction)Wire_bind, METH_VARARGS,
     "bind(protect, ctx, buf, limit, keep, sock, host, port): where and how to send"},
    {"unbind", (PyCFunction)Wire_unbind, METH_NOARGS, "Stop sending (not connected)."},
    {"send", (PyCFunction)Wire_send, METH_VARARGS,
     "send(header, payload): protect and send; ConnectionError when not bound"},
    {"set_rate", (PyCFunction)Wire_set_rate, METH_VARARGS,
     "set_rate(bps or None, now): pace (the bucket starts empty at now) or stop pacing"},
    {"budget", (PyCFunction)Wire_budget, METH_VARARGS,
     "budget(size, now) -> whether size bytes may leave now (taken from the bucket if so)"},
    {"debit", (PyCFunction)Wire_debit, METH_VARARGS,
     "debit(size, now): an audio packet left regardless: take its bytes (at most a second's debt)"},
    {NULL}};

static PyMemberDef Wire_members[] = {
    {"bound", T_INT, offsetof(Wire, bound), READONLY, NULL},
    {"direct", T_INT, offsetof(Wire, direct), 0, NULL},
    {"paced", T_INT, offsetof(Wire, paced), READONLY, NULL},
    {"rate", T_DOUBLE, offsetof(Wire, rate), READONLY, NULL},
    {"tokens", T_DOUBLE, offsetof(Wire, tokens), READONLY, NULL},
    {"refilled", T_DOUBLE, offsetof(Wire, refilled), READONLY, NULL},
    {"packets", T_ULONGLONG, offsetof(Wire, packets), READONLY, NULL},
    {"bytes", T_ULONGLONG, offsetof(Wire, bytes), READONLY, NULL},
    {"fast_packets", T_ULONGLONG, offsetof(Wire, fast_packets), READONLY, NULL},
    {"fast_bytes", T_ULONGLONG, offsetof(Wire, fast_bytes), READONLY, NULL},
    {"dropped", T_ULONGLONG, offsetof(Wire, dropped), READONLY, NULL},
    {NULL}};

static PyTypeObject WireType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "meetings.rtc._fastpath.Wire",
    .tp_basicsize = sizeof(Wire),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One subscriber connection's SRTP send path.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Wire_dealloc,
    .tp_traverse = (traverseproc)Wire_traverse,
    .tp_clear = (inquiry)Wire_clear,
    .tp_methods = Wire_methods,
    .tp_members = Wire_members,
};

/* ---- Slot ----------------------------------------------------------------------------------- */

typedef struct {
    uint16_t seq;
    uint32_t ts;
    uint8_t second;
    uint8_t desc_len;        /* > 0: the payload's first desc_len bytes were rewritten to desc */
    unsigned char desc[8];
    PyObject *payload; /* NULL: empty */
} HistEntry;

/* ---- VP8 payload descriptor (RFC 7741 4.2; meetings/rtc/vp8.py) ---------------------------- */

typedef struct {
    int size, start, pic, pic_at, long_pic, tl0, tl0_at, tid, sync;
} Vp8Desc;

/* 0: parsed, -1: too short. pic, tl0, tid: -1 when absent. */
static int
vp8_parse(const unsigned char *p, Py_ssize_t n, Vp8Desc *d)
{
    if (n < 1)
        return -1;
    unsigned char first = p[0];
    d->start = (first & 0x10) && !(first & 0x07);
    d->pic = d->pic_at = d->tl0 = d->tl0_at = d->tid = -1;
    d->long_pic = d->sync = 0;
    Py_ssize_t pos = 1;
    if (first & 0x80) {
        if (n < 2)
            return -1;
        unsigned char ext = p[1];
        pos = 2;
        if (ext & 0x80) {
            if (n <= pos)
                return -1;
            d->pic_at = (int)pos;
            if (p[pos] & 0x80) {
                if (n <= pos + 1)
                    return -1;
                d->long_pic = 1;
                d->pic = ((p[pos] & 0x7F) << 8) | p[pos + 1];
                pos += 2;
            } else {
                d->pic = p[pos];
                pos += 1;
            }
        }
        if (ext & 0x40) {
            if (n <= pos)
                return -1;
            d->tl0_at = (int)pos;
            d->tl0 = p[pos];
            pos += 1;
        }
        if (ext & 0x30) {
            if (n <= pos)
                return -1;
            if (ext & 0x20) {
                d->tid = p[pos] >> 6;
                d->sync = (p[pos] & 0x20) != 0;
            }
            pos += 1;
        }
    }
    d->size = (int)pos;
    return 0;
}

typedef struct {
    PyObject_HEAD
    int video;
    int waiting_keyframe;
    PyObject *payload_types; /* codec key (str) -> payload type (int) */
    Wire *wire;              /* NULL: always the slow path */
    PyObject *push;          /* the slow path: DownlinkQueue.push */
    /* sequence/timestamp rewriting (SeqRewriter in forwarder.py) */
    double clock_rate;
    int started, in_epoch;
    uint16_t in_first, in_max, out_seq, seq_offset;
    uint32_t out_ts, ts_offset;
    double out_time;
    /* header + extension templates by (has audio level) | (has send time) << 1 */
    unsigned char header[4][MAX_HEADER];
    int header_len[4], level_at[4], time_at[4];
    HistEntry *history;
    unsigned long long forwarded, skipped_waiting_keyframe, skipped_temporal;
    /* VP8 (PySlotCore's docstring): temporal layer filter, picture id and TL0PICIDX rewriting */
    int vp8_pt; /* -1: none */
    int tid_want, tid_max;
    int has_drop;
    uint16_t last_drop;
    int pic_offset, pic_last_out, pic_last_drop, pic_started, pic_reset;
    int tl0_offset, tl0_last_out, tl0_started, tl0_reset;
} Slot;

static inline int
seq_newer(uint16_t a, uint16_t b)
{
    return a != b && (uint16_t)(a - b) < 0x8000;
}

static void
history_clear(Slot *s)
{
    if (s->history == NULL)
        return;
    for (int i = 0; i < HISTORY; i++)
        Py_CLEAR(s->history[i].payload);
}

static int
Slot_traverse(Slot *s, visitproc visit, void *arg)
{
    Py_VISIT(s->payload_types);
    Py_VISIT(s->wire);
    Py_VISIT(s->push);
    if (s->history != NULL)
        for (int i = 0; i < HISTORY; i++)
            Py_VISIT(s->history[i].payload);
    return 0;
}

static int
Slot_clear(Slot *s)
{
    Py_CLEAR(s->payload_types);
    Py_CLEAR(s->wire);
    Py_CLEAR(s->push);
    history_clear(s);
    return 0;
}

static void
Slot_dealloc(Slot *s)
{
    /* A Python subclass's dealloc (subtype_dealloc) untracks, calls this, then drops its type. */
    PyObject_GC_UnTrack(s);
    Slot_clear(s);
    PyMem_Free(s->history);
    s->history = NULL;
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *
Slot_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Slot *s = (Slot *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    for (int i = 0; i < 4; i++)
        s->level_at[i] = s->time_at[i] = -1;
    s->clock_rate = 90000;
    s->vp8_pt = -1;
    s->tid_want = s->tid_max = 255;
    s->pic_last_drop = -1;
    return (PyObject *)s;
}

/* _core_setup(video, clock_rate, payload_types, templates): templates is a list of 4
   (header bytes, level offset, send-time offset) tuples. */
static PyObject *
Slot_core_setup(Slot *s, PyObject *args)
{
    int video;
    double clock_rate;
    PyObject *payload_types, *templates;
    if (!PyArg_ParseTuple(args, "pdO!O!", &video, &clock_rate, &PyDict_Type, &payload_types, &PyList_Type, &templates))
        return NULL;
    if (PyList_GET_SIZE(templates) != 4) {
        PyErr_SetString(PyExc_ValueError, "four header templates are needed");
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        Py_buffer b;
        int level_at, time_at;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(templates, i), "y*ii", &b, &level_at, &time_at))
            return NULL;
        if (b.len < 12 || b.len > MAX_HEADER || level_at >= b.len || time_at + 3 > b.len) {
            PyBuffer_Release(&b);
            PyErr_SetString(PyExc_ValueError, "bad header template");
            return NULL;
        }
        memcpy(s->header[i], b.buf, (size_t)b.len);
        s->header_len[i] = (int)b.len;
        s->level_at[i] = level_at;
        s->time_at[i] = time_at;
        PyBuffer_Release(&b);
    }
    s->video = video;
    s->waiting_keyframe = video;
    s->clock_rate = clock_rate;
    Py_XSETREF(s->payload_types, Py_NewRef(payload_types));
    s->vp8_pt = -1;
    if (video) {
        PyObject *vp8 = PyDict_GetItemString(payload_types, "VP8");
        if (vp8 != NULL) {
            long v = PyLong_AsLong(vp8);
            if (v == -1 && PyErr_Occurred())
                return NULL;
            s->vp8_pt = (int)v;
        }
    }
    if (video && s->history == NULL) {
        s->history = PyMem_Calloc(HISTORY, sizeof(HistEntry));
        if (s->history == NULL)
            return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *
Slot_core_connect(Slot *s, PyObject *args)
{
    PyObject *wire, *push;
    if (!PyArg_ParseTuple(args, "OO", &wire, &push))
        return NULL;
    if (wire != Py_None && !PyObject_TypeCheck(wire, &WireType)) {
        PyErr_SetString(PyExc_TypeError, "wire must be a Wire or None");
        return NULL;
    }
    Py_XSETREF(s->wire, wire == Py_None ? NULL : (Wire *)Py_NewRef(wire));
    Py_XSETREF(s->push, Py_NewRef(push));
    Py_RETURN_NONE;
}

static PyObject *
Slot_restart(Slot *s, PyObject *Py_UNUSED(ignored))
{
    s->in_epoch = 0;
    s->has_drop = 0;
    s->pic_last_drop = -1;
    Py_RETURN_NONE;
}

static PyObject *
Slot_rebase(Slot *s, PyObject *Py_UNUSED(ignored))
{
    s->pic_reset = s->tl0_reset = 1;
    Py_RETURN_NONE;
}

static PyObject *
Slot_history_get(Slot *s, PyObject *arg)
{
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    if (s->history == NULL || seq < 0 || seq > 0xFFFF)
        Py_RETURN_NONE;
    HistEntry *e = &s->history[seq % HISTORY];
    if (e->payload == NULL || e->seq != (uint16_t)seq)
        Py_RETURN_NONE;
    if (e->desc_len == 0)
        return Py_BuildValue("(HkBO)", e->seq, (unsigned long)e->ts, e->second, e->payload);
    Py_ssize_t n = PyBytes_GET_SIZE(e->payload);
    PyObject *rewritten = PyBytes_FromStringAndSize(NULL, n);
    if (rewritten == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(rewritten), e->desc, e->desc_len);
    memcpy(PyBytes_AS_STRING(rewritten) + e->desc_len, PyBytes_AS_STRING(e->payload) + e->desc_len,
           (size_t)(n - e->desc_len));
    return Py_BuildValue("(HkBN)", e->seq, (unsigned long)e->ts, e->second, rewritten);
}

static double
monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 1: forwarded, 0: not, -1: error. */
static int
slot_forward(Slot *s, PyObject *key, uint16_t seq, uint32_t ts, int marker, PyObject *payload,
             const char *pbuf, Py_ssize_t plen, int keyframe, int level, long send_time, double now)
{
    if (s->payload_types == NULL)
        return 0;
    PyObject *pt_obj = PyDict_GetItemWithError(s->payload_types, key);
    if (pt_obj == NULL) /* a codec this subscriber did not negotiate: nothing to send, still waiting */
        return PyErr_Occurred() ? -1 : 0;
    long pt = PyLong_AsLong(pt_obj);
    if (pt == -1 && PyErr_Occurred())
        return -1;
    if (s->waiting_keyframe) {
        if (!keyframe) {
            s->skipped_waiting_keyframe++;
            return 0;
        }
        s->waiting_keyframe = 0;
    }
    Vp8Desc d = {0};
    int has_desc = pt == s->vp8_pt && vp8_parse((const unsigned char *)pbuf, plen, &d) == 0;
    if (has_desc && d.tid >= 0) {
        if (keyframe)
            s->tid_max = s->tid_want;
        else if (d.start) {
            if (s->tid_want < s->tid_max)
                s->tid_max = s->tid_want;
            else if (d.sync && s->tid_max < d.tid && d.tid <= s->tid_want)
                s->tid_max = d.tid;
        }
        if (d.tid > s->tid_max) { /* dropped without a sequence gap (SeqRewriter.drop) */
            if (s->in_epoch && seq_newer(seq, s->in_max)) {
                s->in_max = seq;
                s->seq_offset = (uint16_t)(s->seq_offset - 1);
                s->has_drop = 1;
                s->last_drop = seq;
            }
            if (d.pic >= 0 && d.pic != s->pic_last_drop) {
                s->pic_offset = (s->pic_offset - 1) & 0x7FFF;
                s->pic_last_drop = d.pic;
            }
            s->skipped_temporal++;
            return 0;
        }
    }
    if (!s->in_epoch) {
        uint16_t target_seq;
        uint32_t target_ts;
        if (s->started) {
            double gap = (now - s->out_time) * s->clock_rate;
            uint64_t g = gap < 1.0 ? 1 : (gap > 1.8e19 ? 1 : (uint64_t)gap);
            target_seq = (uint16_t)(s->out_seq + 1);
            target_ts = (uint32_t)(s->out_ts + (uint32_t)g);
        } else {
            target_seq = seq;
            target_ts = ts;
        }
        s->seq_offset = (uint16_t)(target_seq - seq);
        s->ts_offset = (uint32_t)(target_ts - ts);
        s->in_first = s->in_max = seq;
        s->in_epoch = 1;
        s->started = 1;
    } else if (seq_newer(seq, s->in_max)) {
        s->in_max = seq;
    } else if (seq_newer(s->in_first, seq) || (s->has_drop && seq_newer(s->last_drop, seq))) {
        return 0;
    }
    uint16_t out_seq = (uint16_t)(seq + s->seq_offset);
    uint32_t out_ts = (uint32_t)(ts + s->ts_offset);
    if (seq == s->in_max) {
        s->out_seq = out_seq;
        s->out_ts = out_ts;
        s->out_time = now;
    }
    unsigned char desc[8];
    int dlen = 0; /* > 0: the payload's first dlen bytes are sent as desc */
    if (has_desc) {
        int pic_out = -1, tl0_out = -1;
        if (d.pic >= 0) {
            int fresh = s->pic_reset || !s->pic_started;
            if (fresh) {
                int start = s->pic_started ? s->pic_last_out + 1 : d.pic;
                s->pic_offset = (start - d.pic) & 0x7FFF;
                s->pic_reset = 0;
                s->pic_started = 1;
            }
            pic_out = (d.pic + s->pic_offset) & 0x7FFF;
            if (fresh || ((pic_out - s->pic_last_out) & 0x7FFF) < 0x4000)
                s->pic_last_out = pic_out;
            if (!d.long_pic)
                pic_out &= 0x7F;
        }
        if (d.tl0 >= 0) {
            int fresh = s->tl0_reset || !s->tl0_started;
            if (fresh) {
                int start = s->tl0_started ? s->tl0_last_out + 1 : d.tl0;
                s->tl0_offset = (start - d.tl0) & 0xFF;
                s->tl0_reset = 0;
                s->tl0_started = 1;
            }
            tl0_out = (d.tl0 + s->tl0_offset) & 0xFF;
            if (fresh || ((tl0_out - s->tl0_last_out) & 0xFF) < 0x80)
                s->tl0_last_out = tl0_out;
        }
        if (pic_out != d.pic || tl0_out != d.tl0) {
            dlen = d.size;
            memcpy(desc, pbuf, (size_t)dlen);
            if (pic_out >= 0) {
                if (d.long_pic) {
                    desc[d.pic_at] = (unsigned char)(0x80 | ((pic_out >> 8) & 0x7F));
                    desc[d.pic_at + 1] = (unsigned char)(pic_out & 0xFF);
                } else
                    desc[d.pic_at] = (unsigned char)(pic_out & 0x7F);
            }
            if (tl0_out >= 0)
                desc[d.tl0_at] = (unsigned char)tl0_out;
        }
    }
    uint8_t second = (uint8_t)(((marker & 1) << 7) | (pt & 0x7F));
    int v = (level >= 0) | ((send_time >= 0) << 1);
    unsigned char *h = s->header[v];
    h[1] = second;
    h[2] = (unsigned char)(out_seq >> 8);
    h[3] = (unsigned char)out_seq;
    h[4] = (unsigned char)(out_ts >> 24);
    h[5] = (unsigned char)(out_ts >> 16);
    h[6] = (unsigned char)(out_ts >> 8);
    h[7] = (unsigned char)out_ts;
    if (s->level_at[v] >= 0)
        h[s->level_at[v]] = (unsigned char)(level & 0x7F);
    if (s->time_at[v] >= 0) {
        int t = s->time_at[v];
        h[t] = (unsigned char)(send_time >> 16);
        h[t + 1] = (unsigned char)(send_time >> 8);
        h[t + 2] = (unsigned char)send_time;
    }
    if (s->history != NULL) {
        HistEntry *e = &s->history[out_seq % HISTORY];
        Py_XSETREF(e->payload, Py_NewRef(payload));
        e->desc_len = (uint8_t)dlen;
        if (dlen > 0)
            memcpy(e->desc, desc, (size_t)dlen);
        e->seq = out_seq;
        e->ts = out_ts;
        e->second = second;
    }
    Wire *w = s->wire;
    double tokens = 0.0, wire_size = (double)(s->header_len[v] + plen + WIRE_OVERHEAD);
    /* video within the bucket; audio regardless (DownlinkQueue: audio is not paced) */
    if (w != NULL && w->direct && w->bound &&
        (!w->paced || (s->video ? wire_budget(w, wire_size, now, &tokens)
                                : (tokens = wire_debit(w, wire_size, now), 1)))) {
        int rc = wire_send_raw3(w, h, s->header_len[v], desc, dlen, pbuf + dlen, plen - dlen);
        if (rc != SENT && rc != DROPPED && w->paced)
            w->tokens = tokens; /* not sent: the queue's path (push) takes it from the bucket itself */
        if (rc == SENT || rc == DROPPED) {
            if (rc == SENT) {
                w->fast_packets++;
                w->fast_bytes += (unsigned long long)(s->header_len[v] + plen);
            }
            s->forwarded++;
            return 1;
        }
    }
    if (s->push == NULL)
        return 0;
    PyObject *hb = PyBytes_FromStringAndSize((const char *)h, s->header_len[v]);
    if (hb == NULL)
        return -1;
    PyObject *body = payload;
    if (dlen > 0) { /* the queue keeps the packet: it gets its own rewritten copy */
        body = PyBytes_FromStringAndSize(NULL, plen);
        if (body == NULL) {
            Py_DECREF(hb);
            return -1;
        }
        memcpy(PyBytes_AS_STRING(body), desc, (size_t)dlen);
        memcpy(PyBytes_AS_STRING(body) + dlen, pbuf + dlen, (size_t)(plen - dlen));
    } else
        Py_INCREF(body);
    PyObject *r = PyObject_CallFunctionObjArgs(s->push, hb, body, s->video ? Py_True : Py_False, (PyObject *)s, NULL);
    Py_DECREF(hb);
    Py_DECREF(body);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    s->forwarded++;
    return 1;
}

typedef struct {
    PyObject *key, *payload;
    unsigned int seq;
    unsigned long ts;
    int marker, keyframe;
    PyObject *level, *send_time;
    double now;
} PacketArgs;

static int
parse_level(PyObject *level, PyObject *send_time, int *lv, long *st)
{
    *lv = -1;
    *st = -1;
    if (level != Py_None) {
        long l = PyLong_AsLong(level);
        if (l == -1 && PyErr_Occurred())
            return -1;
        *lv = (int)(l & 0x7F);
    }
    if (send_time != Py_None) {
        long t = PyLong_AsLong(send_time);
        if (t == -1 && PyErr_Occurred())
            return -1;
        *st = t & 0xFFFFFF;
    }
    return 0;
}

static PyObject *
Slot_forward(Slot *s, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"codec", "seq", "timestamp", "marker", "payload", "keyframe",
                             "audio_level", "send_time", "now", NULL};
    PacketArgs a;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UIkpSpOOd", kwlist, &a.key, &a.seq, &a.ts, &a.marker,
                                     &a.payload, &a.keyframe, &a.level, &a.send_time, &a.now))
        return NULL;
    int lv;
    long st;
    if (parse_level(a.level, a.send_time, &lv, &st) < 0)
        return NULL;
    int rc = slot_forward(s, a.key, (uint16_t)a.seq, (uint32_t)a.ts, a.marker, a.payload,
                          PyBytes_AS_STRING(a.payload), PyBytes_GET_SIZE(a.payload), a.keyframe, lv, st, a.now);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc);
}

static PyObject *
Slot_get_started(Slot *s, void *c)
{
    return PyBool_FromLong(s->started);
}

static PyObject *
Slot_get_out_seq(Slot *s, void *c)
{
    return PyLong_FromLong(s->out_seq);
}

static int
Slot_set_out_seq(Slot *s, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete out_seq");
        return -1;
    }
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "out_seq is a 16-bit sequence number");
        return -1;
    }
    s->out_seq = (uint16_t)v;
    return 0;
}

static PyObject *
Slot_get_out_ts(Slot *s, void *c)
{
    return PyLong_FromUnsignedLong(s->out_ts);
}

static PyObject *
Slot_get_out_time(Slot *s, void *c)
{
    return PyFloat_FromDouble(s->out_time);
}

static PyObject *
Slot_get_waiting(Slot *s, void *c)
{
    return PyBool_FromLong(s->waiting_keyframe);
}

static int
Slot_set_waiting(Slot *s, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete waiting_keyframe");
        return -1;
    }
    int t = PyObject_IsTrue(value);
    if (t < 0)
        return -1;
    s->waiting_keyframe = t;
    return 0;
}

static PyGetSetDef Slot_getset[] = {
    {"started", (getter)Slot_get_started, NULL, "whether anything was forwarded yet", NULL},
    {"out_seq", (getter)Slot_get_out_seq, (setter)Slot_set_out_seq, "the last outgoing sequence number", NULL},
    {"out_ts", (getter)Slot_get_out_ts, NULL, "the last outgoing timestamp", NULL},
    {"out_time", (getter)Slot_get_out_time, NULL, "when the last packet went out (monotonic)", NULL},
    {"waiting_keyframe", (getter)Slot_get_waiting, (setter)Slot_set_waiting, "video waits for a keyframe", NULL},
    {NULL}};

static PyMemberDef Slot_members[] = {
    {"video", T_INT, offsetof(Slot, video), READONLY, NULL},
    {"forwarded", T_ULONGLONG, offsetof(Slot, forwarded), 0, NULL},
    {"skipped_waiting_keyframe", T_ULONGLONG, offsetof(Slot, skipped_waiting_keyframe), 0, NULL},
    {"skipped_temporal", T_ULONGLONG, offsetof(Slot, skipped_temporal), 0, NULL},
    {"tid_want", T_INT, offsetof(Slot, tid_want), 0, NULL},
    {"tid_max", T_INT, offsetof(Slot, tid_max), READONLY, NULL},
    {"pic_offset", T_INT, offsetof(Slot, pic_offset), READONLY, NULL},
    {"pic_last_out", T_INT, offsetof(Slot, pic_last_out), READONLY, NULL},
    {"tl0_offset", T_INT, offsetof(Slot, tl0_offset), READONLY, NULL},
    {"tl0_last_out", T_INT, offsetof(Slot, tl0_last_out), READONLY, NULL},
    {NULL}};

static PyMethodDef Slot_methods[] = {
    {"_core_setup", (PyCFunction)Slot_core_setup, METH_VARARGS, NULL},
    {"_core_connect", (PyCFunction)Slot_core_connect, METH_VARARGS, NULL},
    {"restart", (PyCFunction)Slot_restart, METH_NOARGS, "The next packet starts a new epoch."},
    {"rebase", (PyCFunction)Slot_rebase, METH_NOARGS, "Picture ids continue from the last sent."},
    {"history_get", (PyCFunction)Slot_history_get, METH_O, "(seq, ts, second, payload) or None"},
    {"forward", (PyCFunction)(void (*)(void))Slot_forward, METH_VARARGS | METH_KEYWORDS,
     "Rewrite and send (or queue) one packet; False if it was not forwarded."},
    {NULL}};

static PyTypeObject SlotType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "meetings.rtc._fastpath.Slot",
    .tp_basicsize = sizeof(Slot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-packet state of one subscriber sender.",
    .tp_new = Slot_new,
    .tp_dealloc = (destructor)Slot_dealloc,
    .tp_traverse = (traverseproc)Slot_traverse,
    .tp_clear = (inquiry)Slot_clear,
    .tp_methods = Slot_methods,
    .tp_members = Slot_members,
    .tp_getset = Slot_getset,
};

/* ---- fanout --------------------------------------------------------------------------------- */

static PyObject *
fanout(PyObject *module, PyObject *args)
{
    PyObject *sinks, *probe;
    PacketArgs a;
    if (!PyArg_ParseTuple(args, "O!UIkpSpOOdO", &PyList_Type, &sinks, &a.key, &a.seq, &a.ts, &a.marker,
                          &a.payload, &a.keyframe, &a.level, &a.send_time, &a.now, &probe))
        return NULL;
    int lv;
    long st;
    if (parse_level(a.level, a.send_time, &lv, &st) < 0)
        return NULL;
    const char *pbuf = PyBytes_AS_STRING(a.payload);
    Py_ssize_t plen = PyBytes_GET_SIZE(a.payload);
    long count = 0;
    /* The list may change if a slow-path callback runs Python code: hold it and re-read size. */
    Py_INCREF(sinks);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sinks); i++) {
        PyObject *item = PyList_GET_ITEM(sinks, i);
        if (!PyObject_TypeCheck(item, &SlotType)) {
            Py_DECREF(sinks);
            PyErr_SetString(PyExc_TypeError, "sinks must be Slot instances");
            return NULL;
        }
        Py_INCREF(item);
        int rc = slot_forward((Slot *)item, a.key, (uint16_t)a.seq, (uint32_t)a.ts, a.marker, a.payload, pbuf,
                              plen, a.keyframe, lv, st, a.now);
        if (rc > 0) {
            count++;
            if (probe != Py_None) {
                PyObject *r = PyObject_CallFunction(probe, "Od", ((Slot *)item)->video ? Py_True : Py_False,
                                                    monotonic() - a.now);
                if (r == NULL)
                    rc = -1;
                else
                    Py_DECREF(r);
            }
        }
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(sinks);
            return NULL;
        }
    }
    Py_DECREF(sinks);
    return PyLong_FromLong(count);
}

static PyMethodDef module_methods[] = {
    {"fanout", fanout, METH_VARARGS,
     "fanout(sinks, codec, seq, timestamp, marker, payload, keyframe, audio_level, send_time, now, probe)"
     " -> number of slots that forwarded the packet"},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "meetings.rtc._fastpath", "The SFU's per-packet fan-out, in C.", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    if (PyType_Ready(&WireType) < 0 || PyType_Ready(&SlotType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Wire", (PyObject *)&WireType) < 0 ||
        PyModule_AddObjectRef(m, "Slot", (PyObject *)&SlotType) < 0 ||
        PyModule_AddIntConstant(m, "HISTORY", HISTORY) < 0 ||
        PyModule_AddIntConstant(m, "WIRE_OVERHEAD", WIRE_OVERHEAD) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
