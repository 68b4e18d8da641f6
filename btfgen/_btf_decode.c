/* The type section of a *valid* BTF blob -> btfgen.btf_model objects, in C
 * (btfgen's fast path for large BTF such as vmlinux; see btf_decode_fast.py).
 *
 * decode() walks the records with every check of btf_parse's reference loop
 * and check_loops(), and builds the same objects.  It does not explain
 * problems: on anything the reference parser would reject (or on any failure)
 * it returns None, and the caller runs the reference parser, which raises the
 * one-line error.  Objects are allocated with tp_alloc and their slots filled
 * through the slot offsets of the classes' member descriptors, which is what
 * the dataclass __init__ would do: btf_decode_fast.py only configures classes
 * whose __init__ does nothing else. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum {
    K_INT = 1, K_PTR, K_ARRAY, K_STRUCT, K_UNION, K_ENUM, K_FWD, K_TYPEDEF,
    K_VOLATILE, K_CONST, K_RESTRICT, K_FUNC, K_FUNC_PROTO, K_VAR, K_DATASEC,
    K_FLOAT, K_DECL_TAG, K_TYPE_TAG, K_ENUM64,
    /* plans that are not kinds */
    P_MEMBER = 20, P_PARAM, P_ENUM_VALUE, P_VAR_SECINFO, N_PLANS
};

#define MAX_TYPE_ID 0x00FFFFFFu
#define MAX_SLOTS 8

struct plan {
    PyTypeObject *type;   /* a reference; NULL until configure() */
    int nslots;
    Py_ssize_t offset[MAX_SLOTS];
};

static struct plan plans[N_PLANS];
static PyObject *encodings[5];   /* IntEncoding members by value 0..4 (1 and 3: unused) */

/* 32-bit words after struct btf_type: fixed, and per vlen, by kind. */
static const uint8_t extra_fixed[20] = {0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0};
static const uint8_t per_vlen[20] = {0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3};

/* configure(plans, encodings): plans is a tuple of N_PLANS entries, each None
 * or (class, (slot descriptor, ...)) in __init__'s argument order. */
static PyObject *configure(PyObject *self, PyObject *args)
{
    PyObject *seq, *encs;
    Py_ssize_t i, j;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &seq, &PyTuple_Type, &encs))
        return NULL;
    if (PyTuple_GET_SIZE(seq) != N_PLANS || PyTuple_GET_SIZE(encs) != 5) {
        PyErr_SetString(PyExc_ValueError, "configure: wrong number of plans or encodings");
        return NULL;
    }
    for (i = 0; i < N_PLANS; i++) {
        PyObject *entry = PyTuple_GET_ITEM(seq, i), *cls, *descrs;
        struct plan p = {0};
        if (entry == Py_None)
            continue;
        if (!PyArg_ParseTuple(entry, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &descrs))
            return NULL;
        p.type = (PyTypeObject *)cls;
        p.nslots = (int)PyTuple_GET_SIZE(descrs);
        if (p.nslots > MAX_SLOTS || p.type->tp_itemsize != 0) {
            PyErr_Format(PyExc_ValueError, "configure: unsupported class %s", p.type->tp_name);
            return NULL;
        }
        for (j = 0; j < p.nslots; j++) {
            PyObject *d = PyTuple_GET_ITEM(descrs, j);
            PyMemberDef *m;
            if (Py_TYPE(d) != &PyMemberDescr_Type) {
                PyErr_Format(PyExc_TypeError, "configure: %s: not a slot", p.type->tp_name);
                return NULL;
            }
            m = ((PyMemberDescrObject *)d)->d_member;
            if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
                PyErr_Format(PyExc_TypeError, "configure: %s.%s: not a plain slot",
                             p.type->tp_name, m->name);
                return NULL;
            }
            p.offset[j] = m->offset;
        }
        Py_INCREF(cls);
        Py_XDECREF(plans[i].type);
        plans[i] = p;
    }
    for (i = 0; i < 5; i++) {
        PyObject *e = PyTuple_GET_ITEM(encs, i);
        Py_INCREF(e);
        Py_XSETREF(encodings[i], e);
    }
    Py_RETURN_NONE;
}

/* A new object of plan p with its slots set to v[0..nslots) (references
 * stolen, all of them, even on failure).  NULL if any value is NULL. */
static PyObject *make(int which, PyObject **v)
{
    const struct plan *p = &plans[which];
    PyObject *o = NULL;
    int i, ok = p->type != NULL;
    for (i = 0; i < p->nslots; i++)
        ok = ok && v[i] != NULL;
    if (ok)
        o = p->type->tp_alloc(p->type, 0);
    for (i = 0; i < p->nslots; i++) {
        if (o)
            *(PyObject **)((char *)o + p->offset[i]) = v[i];
        else
            Py_XDECREF(v[i]);
    }
    return o;
}

#define U(x) PyLong_FromUnsignedLong((unsigned long)(x))
#define B(x) PyBool_FromLong((long)(x))

struct ctx {
    const uint32_t *w;
    Py_ssize_t n;         /* words */
    uint32_t start_id;
    PyObject *names;      /* dict: string offset -> str */
    PyObject *name_of;    /* name_of(off, tid, kind) -> str, for offsets not in names */
};

/* The name at string offset off (a new reference), or NULL. */
static PyObject *name_at(struct ctx *c, uint32_t off, uint32_t tid, unsigned k)
{
    PyObject *key = U(off), *got;
    if (!key)
        return NULL;
    got = PyDict_GetItemWithError(c->names, key);
    if (got) {
        Py_INCREF(got);
    } else if (!PyErr_Occurred()) {
        got = PyObject_CallFunction(c->name_of, "OkI", key, (unsigned long)tid, k);
        if (got && !PyUnicode_CheckExact(got))
            Py_CLEAR(got);
    }
    Py_DECREF(key);
    return got;
}

/* Members, params, enumerators or section entries of the record whose data
 * starts at word i: a new list, or NULL. */
static PyObject *sub_objects(struct ctx *c, Py_ssize_t i, unsigned k, uint32_t vlen,
                             int kflag, uint32_t tid, uint32_t *max_ref)
{
    const uint32_t *w = c->w;
    PyObject *list = PyList_New(vlen), *o = NULL;
    uint32_t j;
    if (!list)
        return NULL;
    for (j = 0; j < vlen; j++) {
        PyObject *v[5];
        switch (k) {
        case K_STRUCT:
        case K_UNION: {
            const uint32_t *m = w + i + 3 * (Py_ssize_t)j;
            if (m[1] > *max_ref)
                *max_ref = m[1];
            v[0] = name_at(c, m[0], tid, k);
            v[1] = U(m[0]);
            v[2] = U(m[1]);
            v[3] = U(kflag ? (m[2] & 0xFFFFFF) : m[2]);
            v[4] = U(kflag ? (m[2] >> 24) : 0);
            o = make(P_MEMBER, v);
            break;
        }
        case K_FUNC_PROTO: {
            const uint32_t *p = w + i + 2 * (Py_ssize_t)j;
            if (p[1] > *max_ref)
                *max_ref = p[1];
            v[0] = name_at(c, p[0], tid, k);
            v[1] = U(p[0]);
            v[2] = U(p[1]);
            o = make(P_PARAM, v);
            break;
        }
        case K_ENUM: {
            const uint32_t *e = w + i + 2 * (Py_ssize_t)j;
            v[0] = name_at(c, e[0], tid, k);
            v[1] = U(e[0]);
            v[2] = kflag ? PyLong_FromLong((long)(int32_t)e[1]) : U(e[1]);
            o = make(P_ENUM_VALUE, v);
            break;
        }
        case K_ENUM64: {
            const uint32_t *e = w + i + 3 * (Py_ssize_t)j;
            uint64_t val = (uint64_t)e[1] | ((uint64_t)e[2] << 32);
            v[0] = name_at(c, e[0], tid, k);
            v[1] = U(e[0]);
            v[2] = kflag ? PyLong_FromLongLong((long long)(int64_t)val)
                         : PyLong_FromUnsignedLongLong((unsigned long long)val);
            o = make(P_ENUM_VALUE, v);
            break;
        }
        default: { /* K_DATASEC */
            const uint32_t *s = w + i + 3 * (Py_ssize_t)j;
            v[0] = U(s[0]);
            v[1] = U(s[1]);
            v[2] = U(s[2]);
            o = make(P_VAR_SECINFO, v);
            break;
        }
        }
        if (!o) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, j, o);
    }
    return list;
}

static int int_size_ok(uint32_t size)
{
    return size == 1 || size == 2 || size == 4 || size == 8 || size == 16;
}

/* Does any struct, union, typedef, qualifier, type tag, array or VAR contain
 * itself by value?  (check_loops() in btf_parse.py, on the same rules.) */
static int has_loop(const struct ctx *c, const uint8_t *kinds, const uint32_t *rec,
                    uint32_t count)
{
    /* state: 0 unvisited, 1 on the path, 2 done; edge: next member to follow */
    uint8_t *state = PyMem_Calloc(count ? count : 1, 1);
    uint32_t *stack = PyMem_Malloc(sizeof(uint32_t) * (count ? count : 1));
    uint32_t *edge = PyMem_Malloc(sizeof(uint32_t) * (count ? count : 1));
    uint32_t root, top, start = c->start_id;
    int loop = -1;
    if (!state || !stack || !edge)
        goto out;
    loop = 0;
    for (root = 0; root < count && !loop; root++) {
        if (state[root] || !kinds[root])
            continue;
        state[root] = 1;
        edge[root] = 0;
        stack[0] = root;
        top = 1;
        while (top && !loop) {
            uint32_t idx = stack[top - 1], ref;
            const uint32_t *r = c->w + rec[idx];
            unsigned k = kinds[idx];
            int have = 0;
            if (k == K_STRUCT || k == K_UNION) {
                uint32_t vlen = r[1] & 0xFFFF;
                if (edge[idx] < vlen) {
                    ref = r[3 + 3 * edge[idx] + 1];
                    edge[idx]++;
                    have = 1;
                }
            } else if (edge[idx] == 0) {
                ref = k == K_ARRAY ? r[3] : r[2];
                edge[idx] = 1;
                have = 1;
            }
            if (!have) {
                state[idx] = 2;
                top--;
                continue;
            }
            if (ref < start || !kinds[ref - start])
                continue;  /* void, in the base (checked there), or holds no type by value */
            ref -= start;
            if (state[ref] == 1) {
                loop = 1;
            } else if (state[ref] == 0) {
                state[ref] = 1;
                edge[ref] = 0;
                stack[top++] = ref;
            }
        }
    }
out:
    PyMem_Free(state);
    PyMem_Free(stack);
    PyMem_Free(edge);
    return loop;
}

/* decode(words, start_id, names, name_of) -> (types, checked) or None.
 *
 * words: the type section as native 32-bit words (a buffer); names: a dict
 * of string offset -> str; name_of(off, tid, kind): the name at any other
 * offset.  checked: the DATASECs and DECL_TAGs, which the caller checks once
 * all types exist.  None: the blob has a problem that the reference parser
 * will report, or decoding failed. */
static PyObject *decode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long start_arg;
    struct ctx c;
    PyObject *types = NULL, *checked = NULL, *result = NULL;
    uint8_t *kinds = NULL;     /* value-holding kinds per type, 0 for the others */
    uint32_t *rec = NULL;      /* word offset of each type's record */
    uint32_t *func_type = NULL, nfuncs = 0;
    uint32_t tid, count = 0, max_ref = 0, cap;
    Py_ssize_t i = 0;
    int bad = 0;

    if (!PyArg_ParseTuple(args, "y*kO!O", &buf, &start_arg, &PyDict_Type, &c.names,
                          &c.name_of))
        return NULL;
    if (buf.len % 4 || start_arg == 0 || start_arg > MAX_TYPE_ID + 1) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "decode: bad words or start id");
        return NULL;
    }
    c.w = buf.buf;
    c.n = buf.len / 4;
    c.start_id = (uint32_t)start_arg;
    cap = (uint32_t)(c.n / 3 + 1);  /* no record is shorter than 3 words */
    types = PyList_New(0);
    checked = PyList_New(0);
    kinds = PyMem_Calloc(cap, 1);
    rec = PyMem_Malloc(sizeof(uint32_t) * cap);
    func_type = PyMem_Malloc(sizeof(uint32_t) * cap);
    if (!types || !checked || !kinds || !rec || !func_type)
        goto fail;

    tid = c.start_id;
    while (i < c.n && !bad) {
        const uint32_t *w = c.w;
        uint32_t name_off, info, st, vlen, extra;
        unsigned k;
        int kflag;
        PyObject *v[8], *t = NULL, *name;
        if (i + 3 > c.n || tid > MAX_TYPE_ID) {
            bad = 1;
            break;
        }
        name_off = w[i];
        info = w[i + 1];
        st = w[i + 2];
        k = (info >> 24) & 0x1F;
        vlen = info & 0xFFFF;
        kflag = info >= 0x80000000u;
        if (k == 0 || k > 19) {
            bad = 1;
            break;
        }
        extra = extra_fixed[k] + per_vlen[k] * vlen;
        if (i + 3 + (Py_ssize_t)extra > c.n) {
            bad = 1;
            break;
        }
        rec[count] = (uint32_t)i;
        i += 3;
        name = name_at(&c, name_off, tid, k);
        if (!name)
            goto fail;
        v[0] = U(tid);
        v[1] = name;
        v[2] = U(name_off);
        switch (k) {
        case K_FUNC:
            if (vlen > 2) {
                bad = 1;
                break;
            }
            if (st > max_ref)
                max_ref = st;
            func_type[nfuncs++] = st;
            v[3] = U(st);
            v[4] = U(vlen);
            v[5] = B(kflag);
            t = make(k, v);
            break;
        case K_FUNC_PROTO:
        case K_STRUCT:
        case K_UNION:
        case K_ENUM:
        case K_ENUM64:
        case K_DATASEC:
            if ((k == K_ENUM || k == K_ENUM64) && st != 1 && st != 2 && st != 4 && st != 8) {
                bad = 1;
                break;
            }
            if (k == K_FUNC_PROTO && st > max_ref)
                max_ref = st;
            if (k == K_STRUCT || k == K_UNION)
                kinds[count] = (uint8_t)k;
            v[3] = U(st);
            v[4] = sub_objects(&c, i, k, vlen, kflag, tid, &max_ref);
            v[5] = B(kflag);
            t = make(k, v);  /* NULL if a member's name was bad: see fail */
            if (t && k == K_DATASEC && PyList_Append(checked, t) < 0)
                Py_CLEAR(t);
            break;
        case K_PTR:
        case K_TYPEDEF:
        case K_VOLATILE:
        case K_CONST:
        case K_RESTRICT:
        case K_TYPE_TAG:
            if ((k == K_TYPEDEF || k == K_TYPE_TAG) && PyUnicode_GET_LENGTH(name) == 0) {
                bad = 1;
                break;
            }
            if (st > max_ref)
                max_ref = st;
            if (k != K_PTR)
                kinds[count] = (uint8_t)k;
            v[3] = U(st);
            v[4] = B(kflag);
            t = make(k, v);
            break;
        case K_INT: {
            uint32_t x = w[i], enc = (x >> 24) & 0x0F, bits_off = (x >> 16) & 0xFF,
                     nr_bits = x & 0xFF;
            if (!int_size_ok(st) || nr_bits > 128 || bits_off + nr_bits > st * 8 ||
                (enc != 0 && enc != 1 && enc != 2 && enc != 4)) {
                bad = 1;
                break;
            }
            v[3] = U(st);
            v[4] = encodings[enc];
            Py_XINCREF(v[4]);
            v[5] = U(bits_off);
            v[6] = U(nr_bits);
            v[7] = B(kflag);
            t = make(k, v);
            break;
        }
        case K_ARRAY:
            if (w[i] > max_ref)
                max_ref = w[i];
            if (w[i + 1] > max_ref)
                max_ref = w[i + 1];
            kinds[count] = K_ARRAY;
            v[3] = U(w[i]);
            v[4] = U(w[i + 1]);
            v[5] = U(w[i + 2]);
            v[6] = B(kflag);
            t = make(k, v);
            break;
        case K_FWD:
            v[3] = B(kflag);
            t = make(k, v);
            break;
        case K_VAR:
            if (PyUnicode_GET_LENGTH(name) == 0) {
                bad = 1;
                break;
            }
            if (st > max_ref)
                max_ref = st;
            kinds[count] = K_VAR;
            v[3] = U(st);
            v[4] = U(w[i]);
            v[5] = B(kflag);
            t = make(k, v);
            break;
        case K_FLOAT:
            if (st != 2 && st != 4 && st != 8 && st != 12 && st != 16) {
                bad = 1;
                break;
            }
            v[3] = U(st);
            v[4] = B(kflag);
            t = make(k, v);
            break;
        default: /* K_DECL_TAG */
            if (PyUnicode_GET_LENGTH(name) == 0) {
                bad = 1;
                break;
            }
            if (st > max_ref)
                max_ref = st;
            v[3] = U(st);
            v[4] = PyLong_FromLong((long)(int32_t)w[i]);
            v[5] = B(kflag);
            t = make(k, v);
            if (t && PyList_Append(checked, t) < 0)
                Py_CLEAR(t);
            break;
        }
        if (bad) {  /* before make(): its values are still ours */
            Py_DECREF(v[0]);
            Py_DECREF(v[1]);
            Py_DECREF(v[2]);
            break;
        }
        if (!t || PyList_Append(types, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
        i += extra;
        tid++;
        count++;
    }
    if (bad || max_ref >= tid)
        goto reject;
    for (uint32_t f = 0; f < nfuncs; f++) {
        uint32_t target = func_type[f];
        if (target < c.start_id)
            goto reject;  /* a prototype in the base: the reference parser checks it */
        if (((c.w[rec[target - c.start_id] + 1] >> 24) & 0x1F) != K_FUNC_PROTO)
            goto reject;
    }
    switch (has_loop(&c, kinds, rec, count)) {
    case 0:
        break;
    case 1:
        goto reject;
    default:
        goto fail;
    }
    result = PyTuple_Pack(2, types, checked);
    goto out;
fail:
    /* A bad name (name_of raised) or no memory: the reference parser meets the
     * same problem and reports it. */
    PyErr_Clear();
reject:
    result = Py_None;
    Py_INCREF(result);
out:
    Py_XDECREF(types);
    Py_XDECREF(checked);
    PyMem_Free(kinds);
    PyMem_Free(rec);
    PyMem_Free(func_type);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "Set the classes that decode() builds."},
    {"decode", decode, METH_VARARGS, "Decode a valid BTF type section, or return None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "btfgen._btf_decode",
    "Fast decoding of valid BTF type sections (see btf_decode_fast.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__btf_decode(void)
{
    return PyModule_Create(&module);
}
