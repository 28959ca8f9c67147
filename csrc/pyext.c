/* pylog._speedups: the three calls where a cffi round trip costs more than the work.
 *
 * The C core (pylog._core) is reached through cffi everywhere else.  A cffi call
 * converts its arguments, releases and retakes the GIL and returns a C value the
 * Python side then inspects: ~1,300 instructions, more than appending a 100-byte
 * record costs.  This module is a small CPython extension, linked with the same
 * core sources, for the paths DESIGN section 7 counts per record:
 *
 *  - Lock: the partition lock (acquire/release/with, as threading.Lock), whose
 *    "held" flag C can read.
 *  - Appender.append(value, key=None): PartitionLog.append's common case.  It runs
 *    with the GIL held and only while the partition Lock is free, so it is
 *    serialized with every locked section (those set the flag with the GIL held
 *    before doing anything, and clear it last).  It returns None, having appended
 *    nothing, whenever the Python path must decide (not bytes, segment full, roll
 *    due, a flush policy or listener, fenced or closed: Python then points the
 *    Appender at no segment).
 *  - records(): Record tuples built straight from decoded columns (headers as a
 *    tuple of pairs; all of it untracked by the cyclic GC, being immutable).
 *  - value_spans(): append_batch's values as pointers + lengths, no copy
 *    (pl_records_in.value_ptrs); join_lengths(): keys and headers as one blob plus
 *    an int32 length per item.
 *
 * Pointers to core structs (pl_segment, pl_append_now, pl_record_cols) arrive as
 * integers from cffi (ffi.cast("uintptr_t", p)); the Python side keeps their owners
 * alive and resets them (Appender.set(0, 0)) before freeing anything.
 * No global mutable state: the module holds only its type objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "pylog.h"

/* ---- Lock ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char held;           /* set/cleared with the GIL held, inside the locked span */
} LockObject;

static int lock_init(LockObject *self, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds != NULL && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Lock() takes no arguments");
        return -1;
    }
    if (self->lock == NULL) {
        self->lock = PyThread_allocate_lock();
        if (self->lock == NULL) {
            PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
            return -1;
        }
    }
    return 0;
}

static void lock_dealloc(LockObject *self)
{
    if (self->lock != NULL) {
        if (self->held)
            PyThread_release_lock(self->lock);
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 acquired, 0 not (timeout / non-blocking), -1 exception (a signal handler raised). */
static int lock_take(LockObject *self, int blocking, double timeout_s)
{
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) == PY_LOCK_ACQUIRED) {
        self->held = 1;
        return 1;
    }
    if (!blocking)
        return 0;
    double deadline = 0;
    PY_TIMEOUT_T wait_us = -1;
    if (timeout_s >= 0) {
        if (timeout_s * 1e6 > (double)PY_TIMEOUT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
            return -1;
        }
        wait_us = (PY_TIMEOUT_T)(timeout_s * 1e6);
        deadline = monotonic_s() + timeout_s;
    }
    for (;;) {
        PyLockStatus r;
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(self->lock, wait_us, 1);
        Py_END_ALLOW_THREADS
        if (r == PY_LOCK_ACQUIRED) {
            self->held = 1;
            return 1;
        }
        if (r == PY_LOCK_FAILURE)
            return 0;
        if (Py_MakePendingCalls() < 0)           /* PY_LOCK_INTR: run signal handlers */
            return -1;
        if (timeout_s >= 0) {
            double left = deadline - monotonic_s();
            if (left <= 0)
                return 0;
            wait_us = (PY_TIMEOUT_T)(left * 1e6);
        }
    }
}

static PyObject *lock_acquire(LockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"blocking", "timeout", NULL};
    int blocking = 1;
    double timeout = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pd:acquire", kwlist, &blocking, &timeout))
        return NULL;
    if (!blocking && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    int r = lock_take(self, blocking, timeout);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *lock_enter(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    int r = lock_take(self, 1, -1);
    if (r < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *lock_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->held) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    self->held = 0;
    PyThread_release_lock(self->lock);
    Py_RETURN_NONE;
}

static PyObject *lock_exit(LockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return lock_release(self, NULL);
}

static PyObject *lock_locked(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->held);
}

static PyObject *lock_repr(LockObject *self)
{
    return PyUnicode_FromFormat("<pylog Lock %s>", self->held ? "locked" : "unlocked");
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lock_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool, as threading.Lock.acquire."},
    {"release", (PyCFunction)lock_release, METH_NOARGS, "Release the lock."},
    {"locked", (PyCFunction)lock_locked, METH_NOARGS, "True while the lock is held."},
    {"__enter__", (PyCFunction)lock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))lock_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pylog._speedups.Lock",
    .tp_doc = "A mutex like threading.Lock whose held flag the C fast paths read.",
    .tp_basicsize = sizeof(LockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)lock_init,
    .tp_dealloc = (destructor)lock_dealloc,
    .tp_repr = (reprfunc)lock_repr,
    .tp_methods = lock_methods,
};

/* ---- Appender -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    LockObject *lock;
    pl_segment *seg;       /* NULL: every append goes the Python way */
    pl_append_now *io;
} AppenderObject;

static int appender_init(AppenderObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *lock;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Appender() takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!:Appender", &LockType, &lock))
        return -1;
    Py_INCREF(lock);
    Py_XSETREF(self->lock, (LockObject *)lock);
    self->seg = NULL;
    self->io = NULL;
    return 0;
}

static void appender_dealloc(AppenderObject *self)
{
    Py_XDECREF(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *appender_set(AppenderObject *self, PyObject *args)
{
    unsigned long long seg, io;
    if (!PyArg_ParseTuple(args, "KK:set", &seg, &io))
        return NULL;
    if ((seg == 0) != (io == 0)) {
        PyErr_SetString(PyExc_ValueError, "segment and io are both set or both 0");
        return NULL;
    }
    self->seg = (pl_segment *)(uintptr_t)seg;
    self->io = (pl_append_now *)(uintptr_t)io;
    Py_RETURN_NONE;
}

/* 1 usable (ptr/len set), 0 not exact bytes (the Python path decides). */
static inline int bytes_span(PyObject *o, const void **p, int32_t *len)
{
    if (o == Py_None) {
        *p = NULL;
        *len = -1;
        return 1;
    }
    if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) > INT32_MAX)
        return 0;
    *p = PyBytes_AS_STRING(o);
    *len = (int32_t)PyBytes_GET_SIZE(o);
    return 1;
}

static PyObject *appender_append(AppenderObject *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "append(value, key=None)");
        return NULL;
    }
    if (self->seg == NULL || self->lock->held)
        Py_RETURN_NONE;
    const void *v, *k;
    int32_t vlen, klen;
    if (!bytes_span(args[0], &v, &vlen) ||
        !bytes_span(nargs > 1 ? args[1] : Py_None, &k, &klen))
        Py_RETURN_NONE;
    if (pl_segment_append_now(self->seg, k, klen, v, vlen, self->io) != PL_OK)
        Py_RETURN_NONE;                 /* nothing appended: Python rolls / raises */
    return PyLong_FromLongLong(self->io->offset);
}

static PyObject *appender_enabled(AppenderObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->seg != NULL);
}

static PyMethodDef appender_methods[] = {
    {"set", (PyCFunction)appender_set, METH_VARARGS,
     "set(segment_addr, io_addr): the active pl_segment and its pl_append_now "
     "(0, 0: off).  Call with the partition lock held."},
    {"append", (PyCFunction)(void (*)(void))appender_append, METH_FASTCALL,
     "append(value, key=None) -> offset, or None (nothing appended: take the "
     "Python path)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef appender_getset[] = {
    {"enabled", (getter)appender_enabled, NULL, "True when pointed at a segment.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject AppenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pylog._speedups.Appender",
    .tp_doc = "Appender(lock): PartitionLog.append's fast path (see the module doc).",
    .tp_basicsize = sizeof(AppenderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)appender_init,
    .tp_dealloc = (destructor)appender_dealloc,
    .tp_methods = appender_methods,
    .tp_getset = appender_getset,
};

/* ---- records --------------------------------------------------------------------- */

static PyObject *corrupt(PyObject *exc, const char *what, int64_t pos)
{
    PyErr_Format(exc, "record %s at position %lld runs past its source", what,
                 (long long)pos);
    return NULL;
}

static inline int varint_zz(const uint8_t *p, const uint8_t *end, const uint8_t **out,
                            int64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *v = (int64_t)(r >> 1) ^ -(int64_t)(r & 1);
            *out = p;
            return 1;
        }
    }
    return 0;
}

static inline PyObject *span_bytes(const uint8_t *base, Py_ssize_t size, int64_t pos,
                                   int32_t len, int *bad)
{
    if (len < 0)
        Py_RETURN_NONE;
    if (pos < 0 || pos > size || len > size - pos) {
        *bad = 1;
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)base + pos, len);
}

/* A tuple of (str, bytes | None) pairs; the shared () when count is 0.  Every tuple
 * made here holds only atomic objects, so it is untracked at once, as the GC would
 * do at its next pass (CPython's own rule for tuples): a read of millions of records
 * then adds nothing for the cyclic GC to traverse. */
static PyObject *headers_tuple(const uint8_t *base, Py_ssize_t size, int64_t pos,
                               int32_t count, PyObject *exc)
{
    if (count <= 0)
        return PyTuple_New(0);
    if (pos < 0 || pos > size)
        return corrupt(exc, "headers", pos);
    PyObject *hs = PyTuple_New(count);
    if (hs == NULL)
        return NULL;
    const uint8_t *p = base + pos, *end = base + size;
    for (int32_t i = 0; i < count; i++) {
        int64_t klen, vlen;
        if (!varint_zz(p, end, &p, &klen) || klen < 0 || klen > end - p)
            goto bad;
        PyObject *key = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)klen, "replace");
        if (key == NULL)
            goto fail;
        p += klen;
        PyObject *val;
        if (!varint_zz(p, end, &p, &vlen) || vlen > end - p) {
            Py_DECREF(key);
            goto bad;
        }
        if (vlen < 0) {
            val = Py_NewRef(Py_None);
        } else {
            val = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)vlen);
            if (val == NULL) {
                Py_DECREF(key);
                goto fail;
            }
            p += vlen;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(key);
            Py_DECREF(val);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, key);
        PyTuple_SET_ITEM(pair, 1, val);
        PyObject_GC_UnTrack(pair);
        PyTuple_SET_ITEM(hs, i, pair);
    }
    PyObject_GC_UnTrack(hs);
    return hs;
bad:
    Py_DECREF(hs);
    return corrupt(exc, "headers", pos);
fail:
    Py_DECREF(hs);
    return NULL;
}

/* records(Record, source, cols_addr, i0, i1, error_type) -> list of Record
 * Rows i0..i1 of a pl_record_cols whose positions index `source` (a buffer). */
static PyObject *speedups_records(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyTypeObject *rtype;
    PyObject *src, *exc;
    unsigned long long addr;
    Py_ssize_t i0, i1;
    if (!PyArg_ParseTuple(args, "O!OKnnO:records", &PyType_Type, &rtype, &src, &addr,
                          &i0, &i1, &exc))
        return NULL;
    if (!PyType_IsSubtype(rtype, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "records() needs a tuple subclass");
        return NULL;
    }
    const pl_record_cols *c = (const pl_record_cols *)(uintptr_t)addr;
    if (c == NULL || i0 < 0 || i1 < i0 || (uint64_t)i1 > c->count) {
        PyErr_SetString(PyExc_ValueError, "records(): rows out of range");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(src, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *base = view.buf;
    Py_ssize_t size = view.len;
    PyObject *out = PyList_New(i1 - i0);
    PyObject *last_ts = NULL;            /* records of a batch often share a timestamp */
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = i0; i < i1; i++) {
        int bad = 0;
        PyObject *off = PyLong_FromLongLong(c->offsets[i]);
        PyObject *ts;
        if (last_ts != NULL && i > i0 && c->timestamps[i] == c->timestamps[i - 1]) {
            ts = Py_NewRef(last_ts);
        } else {
            ts = PyLong_FromLongLong(c->timestamps[i]);
            Py_XSETREF(last_ts, Py_XNewRef(ts));
        }
        PyObject *key = span_bytes(base, size, c->key_pos[i], c->key_lens[i], &bad);
        PyObject *val = span_bytes(base, size, c->value_pos[i], c->value_lens[i], &bad);
        PyObject *hdr = (off && ts && key && val)
            ? headers_tuple(base, size, c->headers_pos[i], c->header_counts[i], exc) : NULL;
        PyObject *rec = hdr ? rtype->tp_alloc(rtype, 5) : NULL;
        if (rec == NULL) {
            Py_XDECREF(off);
            Py_XDECREF(ts);
            Py_XDECREF(key);
            Py_XDECREF(val);
            Py_XDECREF(hdr);
            if (bad && !PyErr_Occurred())
                corrupt(exc, "key or value", c->value_pos[i]);
            Py_CLEAR(out);
            goto done;
        }
        PyTuple_SET_ITEM(rec, 0, off);
        PyTuple_SET_ITEM(rec, 1, ts);
        PyTuple_SET_ITEM(rec, 2, key);
        PyTuple_SET_ITEM(rec, 3, val);
        PyTuple_SET_ITEM(rec, 4, hdr);
        PyObject_GC_UnTrack(rec);            /* ints, bytes, None, untracked tuples */
        PyList_SET_ITEM(out, i - i0, rec);
    }
done:
    Py_XDECREF(last_ts);
    PyBuffer_Release(&view);
    return out;
}

/* ---- join_lengths ---------------------------------------------------------------- */

/* join_lengths(items) -> (blob: bytes, lengths: bytes of native int32, -1 for None),
 * or None when an item is not exactly bytes or None (the caller's general path then
 * says which item is wrong). */
static PyObject *speedups_join_lengths(PyObject *mod, PyObject *items)
{
    (void)mod;
    PyObject *seq = PySequence_Fast(items, "join_lengths() needs a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **it = PySequence_Fast_ITEMS(seq);
    PyObject *result = NULL, *blob = NULL, *lens = NULL;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = it[i];
        if (o == Py_None)
            continue;
        if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) > INT32_MAX) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        total += PyBytes_GET_SIZE(o);
    }
    if (n > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_NoMemory();
        goto done;
    }
    blob = PyBytes_FromStringAndSize(NULL, total);
    lens = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    if (blob == NULL || lens == NULL)
        goto done;
    char *dst = PyBytes_AS_STRING(blob);
    int32_t *ln = (int32_t *)(void *)PyBytes_AS_STRING(lens);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = it[i];
        if (o == Py_None) {
            ln[i] = -1;
            continue;
        }
        Py_ssize_t sz = PyBytes_GET_SIZE(o);
        memcpy(dst, PyBytes_AS_STRING(o), (size_t)sz);
        dst += sz;
        ln[i] = (int32_t)sz;
    }
    result = PyTuple_Pack(2, blob, lens);
done:
    Py_XDECREF(blob);
    Py_XDECREF(lens);
    Py_DECREF(seq);
    return result;
}

/* value_spans(items) -> (keep: tuple of the items, pointers: bytes of native
 * `const uint8_t *`, lengths: bytes of native int32, -1 for None), or None when an
 * item is not exactly bytes or None.  No byte is copied: pl_records_in.value_ptrs
 * points into the items, which `keep` holds for as long as the caller keeps it
 * (a tuple: a list mutated meanwhile cannot free them). */
static PyObject *speedups_value_spans(PyObject *mod, PyObject *items)
{
    (void)mod;
    PyObject *keep = PySequence_Tuple(items);
    if (keep == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(keep);
    PyObject *result = NULL, *ptrs = NULL, *lens = NULL;
    if (n > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(void *)) {
        PyErr_NoMemory();
        goto done;
    }
    ptrs = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(void *));
    lens = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    if (ptrs == NULL || lens == NULL)
        goto done;
    const uint8_t **pp = (const uint8_t **)(void *)PyBytes_AS_STRING(ptrs);
    int32_t *ln = (int32_t *)(void *)PyBytes_AS_STRING(lens);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(keep, i);
        if (o == Py_None) {
            pp[i] = NULL;
            ln[i] = -1;
        } else if (PyBytes_CheckExact(o) && PyBytes_GET_SIZE(o) <= INT32_MAX) {
            pp[i] = (const uint8_t *)PyBytes_AS_STRING(o);
            ln[i] = (int32_t)PyBytes_GET_SIZE(o);
        } else {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    result = PyTuple_Pack(3, keep, ptrs, lens);
done:
    Py_XDECREF(ptrs);
    Py_XDECREF(lens);
    Py_DECREF(keep);
    return result;
}

/* ---- module ---------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"records", speedups_records, METH_VARARGS,
     "records(Record, source, cols_addr, i0, i1, error_type) -> list of Record."},
    {"join_lengths", speedups_join_lengths, METH_O,
     "join_lengths(items) -> (blob, int32 lengths as bytes) or None."},
    {"value_spans", speedups_value_spans, METH_O,
     "value_spans(items) -> (tuple(items), pointers as bytes, int32 lengths as bytes) "
     "or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "pylog._speedups",
    "C fast paths for PartitionLog.append, read and append_batch (see csrc/pyext.c).",
    -1, speedups_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&AppenderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Lock", (PyObject *)&LockType) < 0 ||
        PyModule_AddObjectRef(m, "Appender", (PyObject *)&AppenderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
