/* Build generated record objects from fixed-size C records, without running
 * Python per record (btfgen's per-event fast path; see records_fast.py): as a
 * list (build), or one at a time handed to a callback, from a buffer (deliver)
 * or straight from a perf ring or BPF ring buffer (perf_deliver,
 * ringbuf_deliver).
 *
 * A plan lists, per field of a slotted record class, the slot's descriptor and
 * how to read the value: an integer of 1, 2, 4 or 8 bytes (signed or not), a
 * bool, a float/double, or a char array cut at its first NUL.  Objects are
 * allocated with tp_alloc (or refilled: see next_record) and their slots set
 * through the descriptors, which is what __init__ would do for these classes:
 * records_fast.py only uses a plan after checking that it decodes sample
 * records exactly as from_bytes does. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include <errno.h>
#include <sys/epoll.h>
#include "_perf_ring.h"
#include "_bpf_ringbuf.h"

enum { K_U = 1, K_I = 2, K_BOOL = 3, K_FLOAT = 4, K_CSTR = 5 };

struct field {
    PyObject *descr;      /* the slot's member descriptor (a reference) */
    descrsetfunc set;
    Py_ssize_t slot;      /* byte offset of the slot in the object, or -1: use set */
    int kind;
    Py_ssize_t offset, size;
    /* The value last read for this field and its raw bits: events repeat
     * pids, cpus and comms, and an immutable int or bytes can be shared. */
    PyObject *last;
    uint64_t last_bits;
};

struct plan {
    PyTypeObject *cls;    /* a reference */
    int reusable;         /* see next_record */
    Py_ssize_t nfields;
    struct field fields[];
};

static void plan_free(PyObject *capsule)
{
    struct plan *p = PyCapsule_GetPointer(capsule, "btfgen.plan");
    Py_ssize_t i;
    if (!p)
        return;
    for (i = 0; i < p->nfields; i++) {
        Py_XDECREF(p->fields[i].descr);
        Py_XDECREF(p->fields[i].last);
    }
    Py_XDECREF((PyObject *)p->cls);
    PyMem_Free(p);
}

/* make_plan(cls, [(descriptor, kind, offset, size), ...]) -> capsule */
static PyObject *make_plan(PyObject *self, PyObject *args)
{
    PyObject *cls, *list, *capsule;
    Py_ssize_t n, i;
    struct plan *p;

    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyList_Type, &list))
        return NULL;
    n = PyList_GET_SIZE(list);
    p = PyMem_Calloc(1, sizeof(*p) + n * sizeof(struct field));
    if (!p)
        return PyErr_NoMemory();
    p->cls = (PyTypeObject *)cls;
    Py_INCREF(cls);
    for (i = 0; i < n; i++) {
        PyObject *descr;
        struct field *f = &p->fields[i];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "Oinn", &descr, &f->kind, &f->offset,
                              &f->size))
            goto fail;
        if (!Py_TYPE(descr)->tp_descr_set) {
            PyErr_SetString(PyExc_TypeError, "not a settable descriptor");
            goto fail;
        }
        if (f->offset < 0 || f->size <= 0 ||
            ((f->kind == K_U || f->kind == K_I) && f->size != 1 && f->size != 2 &&
             f->size != 4 && f->size != 8) ||
            (f->kind == K_FLOAT && f->size != 4 && f->size != 8) ||
            (f->kind == K_BOOL && f->size != 1) || f->kind < K_U || f->kind > K_CSTR) {
            PyErr_SetString(PyExc_ValueError, "bad field in plan");
            goto fail;
        }
        Py_INCREF(descr);
        f->descr = descr;
        f->set = Py_TYPE(descr)->tp_descr_set;
        f->slot = -1;
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            /* a __slots__ member: store into the object directly, as its
             * setter would (releasing a refilled record's old value) */
            PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
            if (m->type == T_OBJECT_EX && !(m->flags & READONLY) &&
                ((PyMemberDescrObject *)descr)->d_common.d_type == (PyTypeObject *)cls &&
                m->offset > 0 && m->offset + (Py_ssize_t)sizeof(PyObject *) <=
                ((PyTypeObject *)cls)->tp_basicsize)
                f->slot = m->offset;
        }
        p->nfields = i + 1;
    }
    {
        PyTypeObject *t = (PyTypeObject *)cls;
        p->reusable = t->tp_dictoffset == 0 && t->tp_weaklistoffset == 0 &&
                      t->tp_finalize == NULL && t->tp_del == NULL;
        for (i = 0; i < n; i++)
            p->reusable = p->reusable && p->fields[i].slot >= 0;
    }
    capsule = PyCapsule_New(p, "btfgen.plan", plan_free);
    if (!capsule)
        goto fail;
    return capsule;
fail:
    for (i = 0; i < p->nfields; i++)
        Py_XDECREF(p->fields[i].descr);
    Py_DECREF(cls);
    PyMem_Free(p);
    return NULL;
}

static uint64_t int_bits(const struct field *f, const char *s)
{
    switch (f->size) {
    case 1: return *(const uint8_t *)s;
    case 2: { uint16_t v; memcpy(&v, s, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, s, 4); return v; }
    default: { uint64_t v; memcpy(&v, s, 8); return v; }
    }
}

static PyObject *new_int(const struct field *f, uint64_t bits)
{
    if (f->kind == K_U)
        return PyLong_FromUnsignedLongLong(bits);
    switch (f->size) {
    case 1: return PyLong_FromLong((int8_t)bits);
    case 2: return PyLong_FromLong((int16_t)bits);
    case 4: return PyLong_FromLong((int32_t)bits);
    default: return PyLong_FromLongLong((int64_t)bits);
    }
}

/* A new reference to the value of field f in the record at rec. */
static PyObject *read_value(struct field *f, const char *rec)
{
    const char *s = rec + f->offset;
    PyObject *v;
    switch (f->kind) {
    case K_U:
    case K_I: {
        uint64_t bits = int_bits(f, s);
        if (f->last && f->last_bits == bits)
            return Py_NewRef(f->last);
        v = new_int(f, bits);
        if (v) {
            Py_XSETREF(f->last, Py_NewRef(v));
            f->last_bits = bits;
        }
        return v;
    }
    case K_BOOL:
        return PyBool_FromLong(*s != 0);
    case K_FLOAT:
        if (f->size == 4) { float x; memcpy(&x, s, 4); return PyFloat_FromDouble(x); }
        { double x; memcpy(&x, s, 8); return PyFloat_FromDouble(x); }
    default: { /* K_CSTR */
        const char *nul = memchr(s, 0, f->size);
        Py_ssize_t len = nul ? nul - s : f->size;
        if (f->last && PyBytes_GET_SIZE(f->last) == len &&
            memcmp(PyBytes_AS_STRING(f->last), s, len) == 0)
            return Py_NewRef(f->last);
        v = PyBytes_FromStringAndSize(s, len);
        if (v)
            Py_XSETREF(f->last, Py_NewRef(v));
        return v;
    }
    }
}

/* Set obj's fields from the C record at rec.  Returns 0, or -1 with an exception. */
static int fill_record(struct plan *p, PyObject *obj, const char *rec)
{
    Py_ssize_t j;
    for (j = 0; j < p->nfields; j++) {
        struct field *f = &p->fields[j];
        PyObject *v = read_value(f, rec);
        int rc;
        if (!v)
            return -1;
        if (f->slot >= 0) {
            PyObject **slot = (PyObject **)((char *)obj + f->slot);
            Py_XSETREF(*slot, v); /* takes our reference */
            continue;
        }
        rc = f->set(f->descr, obj, v);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* A new record object for the C record at rec, or NULL with an exception. */
static PyObject *new_record(struct plan *p, const char *rec)
{
    PyObject *obj = p->cls->tp_alloc(p->cls, 0);
    if (obj && fill_record(p, obj, rec) < 0)
        Py_CLEAR(obj);
    return obj;
}

/* The record for rec: *spare refilled when there is one, else a new object.
 *
 * A record handed to a callback that kept no reference to it (the usual case:
 * the callback reads a few fields and returns) is refilled for the next record
 * instead of freed and allocated again, as CPython's zip() reuses its result
 * tuple.  Nobody can see the difference: no reference, no weak reference, no
 * __dict__ and no finalizer (make_plan checks the class). */
static PyObject *next_record(struct plan *p, PyObject **spare, const char *rec)
{
    PyObject *obj = *spare;
    if (!obj)
        return new_record(p, rec);
    *spare = NULL;
    if (fill_record(p, obj, rec) < 0)
        Py_CLEAR(obj);
    return obj;
}

/* Done with obj after its callback: keep it as the spare if nobody else holds it. */
static void release_record(struct plan *p, PyObject **spare, PyObject *obj)
{
    if (p->reusable && !*spare && Py_REFCNT(obj) == 1)
        *spare = obj;
    else
        Py_DECREF(obj);
}

/* Every field of the plan within a record of stride bytes?  0, or -1 with
 * ValueError. */
static int plan_check_stride(const struct plan *p, Py_ssize_t stride)
{
    Py_ssize_t j;
    for (j = 0; j < p->nfields; j++) {
        if (p->fields[j].offset + p->fields[j].size > stride) {
            PyErr_SetString(PyExc_ValueError, "field beyond the record");
            return -1;
        }
    }
    return 0;
}

/* Parse (plan, buffer, stride, start, count, ...) and check the records lie in
 * the buffer; returns the plan, or NULL with an exception (buf released). */
static struct plan *records_in(PyObject *capsule, Py_buffer *buf, Py_ssize_t stride,
                               Py_ssize_t start, Py_ssize_t count)
{
    struct plan *p = PyCapsule_GetPointer(capsule, "btfgen.plan");
    if (!p)
        goto fail;
    if (stride <= 0 || start < 0 || start > buf->len || count < 0 ||
        count > (buf->len - start) / stride) {
        PyErr_SetString(PyExc_ValueError, "records outside the buffer");
        goto fail;
    }
    if (plan_check_stride(p, stride) < 0)
        goto fail;
    return p;
fail:
    PyBuffer_Release(buf);
    return NULL;
}

/* build(plan, data, stride, start, count) -> list of records at data[start + i*stride] */
static PyObject *build(PyObject *self, PyObject *args)
{
    PyObject *capsule, *out;
    Py_buffer buf;
    Py_ssize_t stride, start, count, i;
    struct plan *p;

    if (!PyArg_ParseTuple(args, "Oy*nnn", &capsule, &buf, &stride, &start, &count))
        return NULL;
    if (!(p = records_in(capsule, &buf, stride, start, count)))
        return NULL;
    out = PyList_New(count);
    if (!out)
        goto fail_buf;
    for (i = 0; i < count; i++) {
        PyObject *obj = new_record(p, (const char *)buf.buf + start + i * stride);
        if (!obj)
            goto fail_out;
        PyList_SET_ITEM(out, i, obj);
    }
    PyBuffer_Release(&buf);
    return out;
fail_out:
    Py_DECREF(out); /* unfilled items are NULL: list dealloc skips them */
fail_buf:
    PyBuffer_Release(&buf);
    return NULL;
}

/* Hand the exception being raised to fail(exception).  Returns 1 when it is
 * an Exception (delivery goes on), 2 when it is another BaseException
 * (KeyboardInterrupt, SystemExit: delivery stops after this record, so Ctrl-C
 * is felt at once), -1 when fail itself raised. */
static int pass_on(PyObject *fail)
{
    PyObject *type, *value, *tb, *res;
    int stop;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    stop = value && !PyErr_GivenExceptionMatches(value, PyExc_Exception);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    res = value ? PyObject_CallOneArg(fail, value) : NULL;
    Py_XDECREF(value);
    if (!res)
        return -1;
    Py_DECREF(res);
    return stop ? 2 : 1;
}

/* Call callback(cpu, obj), or callback(obj) when cpu is None, or
 * callback((cpu, obj)) when pair is set (a queue's append).  Returns 0, or
 * what pass_on returns when the callback raised. */
static int hand_over(PyObject *callback, PyObject *cpu, PyObject *obj, PyObject *fail, int pair)
{
    PyObject *argv[2] = {cpu, obj}, *res;
    if (cpu == Py_None) {
        res = PyObject_Vectorcall(callback, argv + 1, 1, NULL);
    } else if (pair) {
        PyObject *t = PyTuple_Pack(2, cpu, obj);
        res = t ? PyObject_CallOneArg(callback, t) : NULL;
        Py_XDECREF(t);
    } else {
        res = PyObject_Vectorcall(callback, argv, 2, NULL);
    }
    if (res) {
        Py_DECREF(res);
        return 0;
    }
    return pass_on(fail);
}

#define DELIVER_PAIRS 1

/* Decode the record at offset (size bytes) with a Python decoder:
 * decoder(data, offset), or decoder(data, offset, size) when sized. */
static PyObject *decode_with(PyObject *decoder, PyObject *data, uint64_t offset, uint64_t size,
                             int sized)
{
    PyObject *argv[3] = {data, NULL, NULL}, *res;
    argv[1] = PyLong_FromUnsignedLongLong(offset);
    if (!argv[1])
        return NULL;
    if (sized && !(argv[2] = PyLong_FromUnsignedLongLong(size))) {
        Py_DECREF(argv[1]);
        return NULL;
    }
    res = PyObject_Vectorcall(decoder, argv, sized ? 3 : 2, NULL);
    Py_DECREF(argv[1]);
    Py_XDECREF(argv[2]);
    return res;
}

/* deliver(decoder, data, stride, sizes, first, count, callback, cpu, fail,
 *         cursor, flags) -> records handed over
 *
 * Hand the records first .. first + count - 1 of a drain (in data) to
 * callback, one at a time, starting at the one the cursor points at.  cursor
 * is the address of two uint64_t: the index of the next record to hand over
 * and its byte offset in data.  It moves past a record just before the
 * record's callback runs: whatever exception interrupts delivery (a signal
 * handler's included), each record is handed over once and the rest stays for
 * the next call.
 *
 * decoder: a plan (the record built in C), or a callable: decoder(data, off),
 * or decoder(data, off, size) when sizes is given.  stride > 0: record i at
 * i * stride (sizes cut to stride); 0: packed, each 8-byte aligned after the
 * previous (needs sizes).  sizes: 0 or the address of each record's raw size
 * (uint32_t[]).  callback(cpu, record), callback(record) when cpu is None,
 * callback((cpu, record)) with DELIVER_PAIRS.  fail(exception) takes what a
 * callback raises (see pass_on: an Exception lets delivery go on, another
 * stops it after that record).  A decoder returning Ellipsis skips the record
 * (it reported why itself); what a decoder raises propagates, the record left
 * for the next call (a signal handler may raise anywhere in Python code). */
static PyObject *deliver(PyObject *self, PyObject *args)
{
    PyObject *decoder, *data, *callback, *cpu, *fail, *spare = NULL;
    unsigned long long sizes_addr, cursor_addr;
    Py_ssize_t stride, first, count, handed = 0;
    Py_buffer buf;
    int flags;
    struct plan *p = NULL;
    const uint32_t *sizes;
    uint64_t *cursor, end;

    if (!PyArg_ParseTuple(args, "OOnKnnOOOKi", &decoder, &data, &stride, &sizes_addr, &first,
                          &count, &callback, &cpu, &fail, &cursor_addr, &flags))
        return NULL;
    if (PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    sizes = (const uint32_t *)(uintptr_t)sizes_addr;
    cursor = (uint64_t *)(uintptr_t)cursor_addr;
    if (PyCapsule_CheckExact(decoder)) {
        if (!(p = PyCapsule_GetPointer(decoder, "btfgen.plan")))
            goto fail;
        if (stride <= 0 || plan_check_stride(p, stride) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a plan needs a stride");
            goto fail;
        }
    }
    if (stride < 0 || first < 0 || count < 0 || !cursor || (!stride && !sizes) ||
        (stride && first + count > buf.len / stride) || cursor[0] < (uint64_t)first) {
        PyErr_SetString(PyExc_ValueError, "records outside the buffer");
        goto fail;
    }
    end = (uint64_t)(first + count);
    while (cursor[0] < end) {
        uint64_t i = cursor[0];
        uint64_t off = stride ? i * stride : cursor[1];
        uint64_t size = sizes ? sizes[i] : (uint64_t)stride;
        uint64_t next_off;
        PyObject *obj;
        int rc;
        if (stride) {
            if (size > (uint64_t)stride)
                size = stride;
            next_off = off + stride;
        } else {
            next_off = (off + size + 7) & ~(uint64_t)7;
        }
        if (off + size > (uint64_t)buf.len) {
            PyErr_SetString(PyExc_ValueError, "records outside the buffer");
            goto fail;
        }
        obj = p ? next_record(p, &spare, (const char *)buf.buf + off)
                : decode_with(decoder, data, off, size, sizes != NULL);
        if (!obj)  /* the record stays for the next call (a signal handler's exception) */
            goto fail;
        if (obj == Py_Ellipsis) {  /* the decoder reported it to fail() itself: skip it */
            Py_DECREF(obj);
            cursor[0] = i + 1;
            cursor[1] = next_off;
            continue;
        }
        cursor[0] = i + 1;
        cursor[1] = next_off;
        handed++;
        rc = hand_over(callback, cpu, obj, fail, flags & DELIVER_PAIRS);
        if (p)
            release_record(p, &spare, obj);
        else
            Py_DECREF(obj);
        if (rc < 0)
            goto fail;
        if (rc == 2)
            break;
    }
    Py_XDECREF(spare);
    PyBuffer_Release(&buf);
    return PyLong_FromSsize_t(handed);
fail:
    Py_XDECREF(spare);
    PyBuffer_Release(&buf);
    return NULL;
}

/* Wait up to timeout_ms (unless 0) for a ring to be readable, without the
 * GIL.  Returns 0, or -1 with an exception (a signal handler raised, or a
 * wait error). */
static int wait_rings(int epoll_fd, int timeout_ms)
{
    struct epoll_event events[16];
    int rc;
    if (timeout_ms == 0)
        return 0;
    Py_BEGIN_ALLOW_THREADS
    rc = epoll_wait(epoll_fd, events, 16, timeout_ms);
    Py_END_ALLOW_THREADS
    if (rc >= 0)
        return 0;
    if (errno == EINTR)  /* a signal: its Python handler runs now (Ctrl-C raises here) */
        return PyErr_CheckSignals();
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* perf_deliver(plan, rings, nrings, cpus, stride, callback, fail, ring_lost,
 *              epoll_fd, timeout_ms) -> (delivered, lost, stopped)
 *
 * The per-event hot path of a perf buffer, without copying the rings: waits
 * (see wait_rings), then for every ring reads each sample in place, builds its
 * record and hands it to callback(cpu, record) (hand_over).  rings and
 * ring_lost are the addresses of struct btfgen_ring[nrings] and
 * uint64_t[nrings] (lost samples are added to the latter and to the returned
 * total); cpus is a tuple of each ring's CPU.  The ring's tail moves past a
 * record before its callback runs and is read again after it, so a callback
 * that polls the same buffer sees each record once.  A sample shorter than
 * stride stops the walk there (stopped = 1): the caller handles the rest;
 * stopped = 2 after a callback raised a BaseException that is not an
 * Exception (see pass_on): the rest waits for the next call. */
static PyObject *perf_deliver(PyObject *self, PyObject *args)
{
    PyObject *capsule, *cpus, *callback, *fail, *spare = NULL;
    unsigned long long rings_addr, lost_addr;
    int nrings, epoll_fd, timeout_ms, r, stopped = 0;
    Py_ssize_t stride;
    unsigned long long delivered = 0, lost_total = 0;
    struct btfgen_ring *rings;
    uint64_t *ring_lost;
    char *tmp = NULL;
    struct plan *p;

    if (!PyArg_ParseTuple(args, "OKiO!nOOKii", &capsule, &rings_addr, &nrings, &PyTuple_Type,
                          &cpus, &stride, &callback, &fail, &lost_addr, &epoll_fd, &timeout_ms))
        return NULL;
    if (!(p = PyCapsule_GetPointer(capsule, "btfgen.plan")))
        return NULL;
    if (nrings < 0 || PyTuple_GET_SIZE(cpus) < nrings || stride <= 0 || stride > 65535) {
        PyErr_SetString(PyExc_ValueError, "bad rings, cpus or stride");
        return NULL;
    }
    if (plan_check_stride(p, stride) < 0)
        return NULL;
    rings = (struct btfgen_ring *)(uintptr_t)rings_addr;
    ring_lost = (uint64_t *)(uintptr_t)lost_addr;
    if (wait_rings(epoll_fd, timeout_ms) < 0)
        return NULL;
    for (r = 0; r < nrings && !stopped; r++) {
        struct btfgen_ring *ring = &rings[r];
        PyObject *cpu = PyTuple_GET_ITEM(cpus, r);
        uint64_t *tailp, head, tail;
        const char *data;
        if (!ring->base)
            continue;
        tailp = (uint64_t *)(ring->base + BTFGEN_PAGE_TAIL);
        data = ring->base + ring->page_size;
        /* Acquire: record bytes are read only after the head that covers them. */
        head = __atomic_load_n((uint64_t *)(ring->base + BTFGEN_PAGE_HEAD), __ATOMIC_ACQUIRE);
        /* the tail is read anew each time: a callback may have polled past it */
        while ((tail = __atomic_load_n(tailp, __ATOMIC_RELAXED)) < head) {
            struct btfgen_perf_record rec;
            const char *sample;
            PyObject *obj;
            int rc;
            if (btfgen_ring_next(data, ring->data_size, tail, head, &rec) < 0)
                break; /* cannot happen with a sane kernel; stop rather than loop */
            if (rec.type != BTFGEN_RECORD_SAMPLE) {
                if (rec.lost) {
                    ring_lost[r] += rec.lost;
                    lost_total += rec.lost;
                }
                /* Release: our reads finish before the kernel may reuse the space. */
                __atomic_store_n(tailp, tail + rec.size, __ATOMIC_RELEASE);
                continue;
            }
            if (rec.raw < (uint64_t)stride) {
                stopped = 1;
                break;
            }
            sample = rec.sample;
            if (!sample) { /* wrapped around the end of the ring */
                if (!tmp && !(tmp = PyMem_Malloc(stride))) {
                    PyErr_NoMemory();
                    goto fail;
                }
                btfgen_ring_copy(tmp, data, ring->data_size, tail + 12, stride);
                sample = tmp;
            }
            obj = next_record(p, &spare, sample);
            if (!obj)
                goto fail;
            __atomic_store_n(tailp, tail + rec.size, __ATOMIC_RELEASE);
            delivered++;
            rc = hand_over(callback, cpu, obj, fail, 0);
            release_record(p, &spare, obj);
            if (rc < 0)
                goto fail;
            if (rc == 2) {  /* KeyboardInterrupt and the like: out after this record */
                stopped = 2;
                break;
            }
        }
    }
    Py_XDECREF(spare);
    PyMem_Free(tmp);
    return Py_BuildValue("KKi", delivered, lost_total, stopped);
fail:
    Py_XDECREF(spare);
    PyMem_Free(tmp);
    return NULL;
}

/* ringbuf_deliver(plan, consumer_pos, producer_pos, data, data_size, stride,
 *                 callback, fail, epoll_fd, timeout_ms) -> (delivered, stopped)
 *
 * perf_deliver for a BPF ring buffer (BPF_MAP_TYPE_RINGBUF, walked as in
 * _bpf_ringbuf.h, shared with the drain): waits, then builds each committed record
 * in place and hands it to callback(record).  The addresses are those of the
 * runtime's own mapping of the map (consumer_pos in the read-write consumer
 * page; producer_pos and the data area, mapped twice in a row so a record
 * never wraps, read-only).  Discarded records are skipped; a record still
 * being written ends the walk.  consumer_pos moves past a record before its
 * callback runs and is read again after it (a callback may poll the same
 * buffer).  A sample shorter than stride stops the walk there (stopped = 1);
 * a callback's BaseException that is not an Exception stops it after that
 * record (stopped = 2). */
static PyObject *ringbuf_deliver(PyObject *self, PyObject *args)
{
    PyObject *capsule, *callback, *fail, *spare = NULL;
    unsigned long long cons_addr, prod_addr, data_addr, data_size;
    unsigned long long delivered = 0, consumed = 0;
    int epoll_fd, timeout_ms, stopped = 0, progress = 1, raised = 0;
    Py_ssize_t stride;
    uint64_t *consumer_pos;
    const uint64_t *producer_pos;
    const char *data;
    struct plan *p;

    if (!PyArg_ParseTuple(args, "OKKKKnOOii", &capsule, &cons_addr, &prod_addr, &data_addr,
                          &data_size, &stride, &callback, &fail, &epoll_fd, &timeout_ms))
        return NULL;
    if (!(p = PyCapsule_GetPointer(capsule, "btfgen.plan")))
        return NULL;
    if (stride <= 0 || !data_size || data_size & (data_size - 1)) {
        PyErr_SetString(PyExc_ValueError, "bad stride or ring size");
        return NULL;
    }
    if (plan_check_stride(p, stride) < 0)
        return NULL;
    consumer_pos = (uint64_t *)(uintptr_t)cons_addr;
    producer_pos = (const uint64_t *)(uintptr_t)prod_addr;
    data = (const char *)(uintptr_t)data_addr;
    if (wait_rings(epoll_fd, timeout_ms) < 0)
        return NULL;
    /* Like the drain, look again after a pass that found records, but not
     * after a callback raised (Ctrl-C must come out of a busy ring) nor past
     * one ring's worth of records: poll() returns even under sustained load. */
    while (progress && !stopped && !raised && consumed < data_size) {
        /* Acquire: a header is read only after the producer_pos covering it. */
        uint64_t prod = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE), cons;
        progress = 0;
        /* consumer_pos is read anew each time: a callback may have polled past it */
        while ((cons = __atomic_load_n(consumer_pos, __ATOMIC_RELAXED)) < prod) {
            const char *sample;
            uint32_t raw;
            uint64_t step;
            PyObject *obj = NULL;
            int rc, kind = btfgen_ringbuf_next(data, data_size, cons, prod, &sample, &raw,
                                               &step);
            if (kind == BTFGEN_RB_WAIT)
                break;
            if (kind == BTFGEN_RB_RECORD) {
                if (raw < (uint64_t)stride) {
                    stopped = 1;
                    break;
                }
                if (!(obj = next_record(p, &spare, sample)))
                    goto fail;
            }
            btfgen_ringbuf_consume(consumer_pos, cons + step);
            progress = 1;
            consumed += step;
            if (!obj)
                continue;
            delivered++;
            rc = hand_over(callback, Py_None, obj, fail, 0);
            release_record(p, &spare, obj);
            if (rc < 0)
                goto fail;
            if (rc == 2) {
                stopped = 2;
                break;
            }
            raised |= rc;
        }
    }
    Py_XDECREF(spare);
    return Py_BuildValue("Ki", delivered, stopped);
fail:
    Py_XDECREF(spare);
    return NULL;
}

static PyMethodDef methods[] = {
    {"make_plan", make_plan, METH_VARARGS, "make_plan(cls, fields) -> plan"},
    {"build", build, METH_VARARGS, "build(plan, data, stride, start, count) -> list"},
    {"deliver", deliver, METH_VARARGS,
     "deliver(decoder, data, stride, sizes, first, count, callback, cpu, fail, cursor, flags) "
     "-> handed"},
    {"perf_deliver", perf_deliver, METH_VARARGS,
     "perf_deliver(plan, rings, nrings, cpus, stride, callback, fail, ring_lost, epoll_fd, "
     "timeout_ms) -> (delivered, lost, stopped)"},
    {"ringbuf_deliver", ringbuf_deliver, METH_VARARGS,
     "ringbuf_deliver(plan, consumer_pos, producer_pos, data, data_size, stride, callback, "
     "fail, epoll_fd, timeout_ms) -> (delivered, stopped)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_records", "Record objects built from C records.", -1, methods,
};

PyMODINIT_FUNC PyInit__records(void)
{
    return PyModule_Create(&module);
}
