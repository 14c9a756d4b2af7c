/* JSON Schema validation (see jsonschema.h): a read-only recursive walk over (schema, instance)
 * pairs using the tables jschema_new() built, with caps on instance depth, $ref hops on the
 * current path, stack frames and total steps. Failures are reported once, at the first one. */
#include "mcp/jsonschema_int.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define MAX_INSTANCE_DEPTH 64 /* levels of instance nesting the schema may descend */
#define MAX_REF_HOPS 256      /* $ref hops on the current path ("$ref": "#" cycles) */
#define MAX_FRAMES 1024       /* validate() calls on the C stack */
#define MAX_STEPS 2000000UL   /* validate() calls per jschema_validate (anyOf blow-ups) */
#define EQ_MAX_DEPTH 2048     /* deeper values compare unequal (jansson parses 2048 at most) */

static long long count_of(const json_t *j)
{
    double d;

    if (json_is_integer(j))
        return json_integer_value(j);
    d = json_real_value(j);
    return d >= 9.2e18 ? LLONG_MAX : (long long)d;
}

static int int_real_cmp(json_int_t i, double d)
{
    double t;

    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    t = trunc(d);
    if (i != (json_int_t)t)
        return i < (json_int_t)t ? -1 : 1;
    return d > t ? -1 : (d < t ? 1 : 0);
}

/* Compares two JSON numbers exactly: an integer is never rounded to a double. */
static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_real(a) && json_is_real(b)) {
        double x = json_real_value(a), y = json_real_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_integer(a))
        return int_real_cmp(json_integer_value(a), json_real_value(b));
    return -int_real_cmp(json_integer_value(b), json_real_value(a));
}

/* Shortest text that reads back as the same number. */
static void fmt_num(const json_t *n, char *out, size_t cap)
{
    double d = json_real_value(n);
    int p;

    if (json_is_integer(n)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
        return;
    }
    for (p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* Compact JSON text of j, cut to fit cap with "..." at the end. */
static void fmt_json(const json_t *j, char *out, size_t cap)
{
    char *d = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = d ? strlen(d) : 0;

    if (n < cap)
        snprintf(out, cap, "%s", d ? d : "");
    else
        snprintf(out, cap, "%.*s...", (int)(cap - 4), d);
    free(d);
}

/* JSON equality: 1 == 1.0, objects compare without regard to member order. */
static int json_eq(const json_t *a, const json_t *b, unsigned depth)
{
    const char *key;
    size_t klen, i;
    json_t *va;

    if (depth > EQ_MAX_DEPTH)
        return 0;
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_keylen_foreach ((json_t *)a, key, klen, va) {
            const json_t *vb = json_object_getn(b, key, klen);
            if (vb == NULL || !json_eq(va, vb, depth + 1))
                return 0;
        }
        return 1;
    default: return 1; /* true, false, null: same type */
    }
}

static uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

/* A hash consistent with json_eq. */
static uint64_t json_hash(const json_t *j, unsigned depth)
{
    uint64_t h = json_typeof(j), sum = 0, bits;
    const char *key;
    size_t klen, i;
    json_t *v;
    double d;

    if (depth > EQ_MAX_DEPTH)
        return 0;
    switch (json_typeof(j)) {
    case JSON_INTEGER: return mix(1, (uint64_t)json_integer_value(j));
    case JSON_REAL:
        d = json_real_value(j);
        if (jschema_is_integral(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return mix(1, (uint64_t)(json_int_t)d);
        memcpy(&bits, &d, sizeof bits);
        return mix(2, bits);
    case JSON_STRING:
        for (i = 0; i < json_string_length(j); i++)
            h = (h ^ (unsigned char)json_string_value(j)[i]) * 0x100000001b3ULL;
        return h;
    case JSON_ARRAY:
        for (i = 0; i < json_array_size(j); i++)
            h = mix(h, json_hash(json_array_get(j, i), depth + 1));
        return h;
    case JSON_OBJECT:
        json_object_keylen_foreach ((json_t *)j, key, klen, v) {
            uint64_t kh = 0xcbf29ce484222325ULL;
            for (i = 0; i < klen; i++)
                kh = (kh ^ (unsigned char)key[i]) * 0x100000001b3ULL;
            sum += mix(kh, json_hash(v, depth + 1));
        }
        return mix(h, sum);
    default: return mix(h, 0);
    }
}

struct hidx {
    uint64_t h;
    size_t i;
};

static int hidx_cmp(const void *a, const void *b)
{
    const struct hidx *x = a, *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Finds two equal items (*a < *b) of an array: 1 when there are some. */
static int find_duplicate(const json_t *arr, size_t *a, size_t *b)
{
    size_t n = json_array_size(arr), i, j, k;
    struct hidx *hs;
    int found = 0;

    if (n < 2)
        return 0;
    hs = xmalloc(n * sizeof *hs);
    for (i = 0; i < n; i++) {
        hs[i].h = json_hash(json_array_get(arr, i), 0);
        hs[i].i = i;
    }
    qsort(hs, n, sizeof *hs, hidx_cmp);
    for (i = 0; i < n && !found; i = j) {
        for (j = i + 1; j < n && hs[j].h == hs[i].h; j++)
            ;
        for (k = i; k < j && !found; k++) {
            size_t m;
            for (m = k + 1; m < j && !found; m++) {
                if (json_eq(json_array_get(arr, hs[k].i), json_array_get(arr, hs[m].i), 0)) {
                    *a = hs[k].i;
                    *b = hs[m].i;
                    found = 1;
                }
            }
        }
    }
    free(hs);
    return found;
}

struct vctx {
    const struct jschema *s;
    struct jschema_error *err; /* where a failure goes; NULL while evaluating silently */
    char path[sizeof(((struct jschema_error *)0)->path)]; /* instance location */
    size_t plen;
    unsigned depth, hops, frames;
    unsigned long steps;
    const char *limit; /* the cap that was hit, for the ERR_DEPTH report */
    struct {
        const json_t *sch, *inst;
    } trail[MAX_REF_HOPS]; /* the $ref hops on the current path, to catch cycles early */
};

static int validate(struct vctx *v, const json_t *sch, const json_t *inst);

static int vfail(struct vctx *v, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int vfail(struct vctx *v, const char *kw, const char *fmt, ...)
{
    va_list ap;

    if (v->err != NULL && v->err->keyword[0] == '\0') {
        snprintf(v->err->keyword, sizeof v->err->keyword, "%s", kw);
        memcpy(v->err->path, v->path, v->plen + 1);
        va_start(ap, fmt);
        vsnprintf(v->err->message, sizeof v->err->message, fmt, ap);
        va_end(ap);
    }
    return ERR_INVALID;
}

static int over_limit(struct vctx *v, const char *what)
{
    if (v->limit == NULL)
        v->limit = what;
    return ERR_DEPTH;
}

/* Validates a member or item of the current instance, one level deeper. */
static int child(struct vctx *v, const json_t *sch, const json_t *inst, const char *seg,
                 size_t seglen)
{
    size_t old;
    int r;

    if (json_is_true(sch))
        return 0;
    if (v->depth >= MAX_INSTANCE_DEPTH)
        return over_limit(v, "the instance is nested more than 64 levels deep");
    old = jschema_path_push(v->path, sizeof v->path, &v->plen, seg, seglen);
    v->depth++;
    r = validate(v, sch, inst);
    v->depth--;
    jschema_path_pop(v->path, &v->plen, old);
    return r;
}

static int item(struct vctx *v, const json_t *sch, const json_t *inst, size_t i)
{
    char seg[24];

    return child(v, sch, inst, seg, (size_t)snprintf(seg, sizeof seg, "%zu", i));
}

/* Runs validation with failures sent to into (NULL: nowhere) instead of v->err. */
static int redirect(struct vctx *v, const json_t *sch, const json_t *inst,
                    struct jschema_error *into)
{
    struct jschema_error *saved = v->err;
    int r;

    if (into != NULL)
        memset(into, 0, sizeof *into);
    v->err = into;
    r = validate(v, sch, inst);
    v->err = saved;
    return r;
}

/* 1 when s[0..n) matches the regex compiled for pat, 0 when not, -1 when PCRE2 gave up. */
static int re_match(const struct jschema *s, const char *pat, const char *subj, size_t n)
{
    pcre2_code *re = jschema_pmap_get(&s->regex, pat);
    pcre2_match_data *md;
    int rc;

    if (re == NULL || (md = pcre2_match_data_create(1, NULL)) == NULL)
        return -1;
    rc = pcre2_match(re, (PCRE2_SPTR)subj, n, 0, 0, md, s->mctx);
    pcre2_match_data_free(md);
    return rc >= 0 ? 1 : (rc == PCRE2_ERROR_NOMATCH ? 0 : -1);
}

static const char *type_of(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static int type_is(const char *t, const json_t *j)
{
    if (strcmp(t, "integer") == 0)
        return json_is_integer(j) || (json_is_real(j) && jschema_is_integral(json_real_value(j)));
    if (strcmp(t, "number") == 0)
        return json_is_number(j);
    return strcmp(t, type_of(j)) == 0;
}

static int check_type(struct vctx *v, const json_t *t, const json_t *inst)
{
    char want[160] = "";
    size_t i, l = 0;
    json_t *e;

    if (json_is_string(t) && type_is(json_string_value(t), inst))
        return 0;
    json_array_foreach (t, i, e)
        if (type_is(json_string_value(e), inst))
            return 0;
    if (v->err == NULL)
        return ERR_INVALID;
    if (json_is_string(t))
        snprintf(want, sizeof want, "%s", json_string_value(t));
    json_array_foreach (t, i, e)
        if (l < sizeof want)
            l += (size_t)snprintf(want + l, sizeof want - l, "%s%s", i ? " or " : "",
                                  json_string_value(e));
    return vfail(v, "type", "expected %s, got %s", want, type_of(inst));
}

static int check_generic(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const json_t *k;
    char buf[200] = "";
    size_t i;
    json_t *e;
    int r;

    if ((k = json_object_get(sch, "type")) != NULL && (r = check_type(v, k, inst)) != 0)
        return r;
    if ((k = json_object_get(sch, "enum")) != NULL) {
        json_array_foreach (k, i, e)
            if (json_eq(e, inst, 0))
                break;
        if (i == json_array_size(k)) {
            if (v->err != NULL)
                fmt_json(k, buf, sizeof buf);
            return vfail(v, "enum", "value must be one of %s", buf);
        }
    }
    if ((k = json_object_get(sch, "const")) != NULL && !json_eq(k, inst, 0)) {
        if (v->err != NULL)
            fmt_json(k, buf, sizeof buf);
        return vfail(v, "const", "value must be %s", buf);
    }
    return 0;
}

static int check_required(struct vctx *v, const json_t *names, const json_t *inst, const char *kw,
                          const char *because)
{
    size_t i;
    json_t *n;

    json_array_foreach (names, i, n) {
        if (json_object_getn(inst, json_string_value(n), json_string_length(n)) != NULL)
            continue;
        if (because != NULL)
            return vfail(v, kw, "property '%s' is required when '%s' is present",
                         json_string_value(n), because);
        return vfail(v, kw, "property '%s' is required", json_string_value(n));
    }
    return 0;
}

static int check_property_name(struct vctx *v, const json_t *sch, const char *key, size_t klen)
{
    json_t *name = json_stringn(key, klen);
    struct jschema_error *e = NULL;
    int r;

    if (name == NULL)
        return ERR_NOMEM;
    if (v->err != NULL)
        e = xmalloc(sizeof *e);
    r = redirect(v, sch, name, e);
    if (r == ERR_INVALID)
        r = vfail(v, "propertyNames", "property name '%s' is not allowed: %s", key,
                  e ? e->message : "");
    free(e);
    json_decref(name);
    return r;
}

/* properties, patternProperties and additionalProperties for one member. */
static int check_member(struct vctx *v, const json_t *sch, const char *key, size_t klen,
                        const json_t *val)
{
    const json_t *props = json_object_get(sch, "properties");
    const json_t *pats = json_object_get(sch, "patternProperties");
    const json_t *addl = json_object_get(sch, "additionalProperties"), *sub;
    int matched = 0, m, r;
    const char *pat;

    if (props != NULL && (sub = json_object_getn(props, key, klen)) != NULL) {
        matched = 1;
        if (json_is_false(sub))
            return vfail(v, "properties", "property '%s' is not allowed", key);
        if ((r = child(v, sub, val, key, klen)) != 0)
            return r;
    }
    json_object_foreach ((json_t *)pats, pat, sub) {
        if ((m = re_match(v->s, pat, key, klen)) < 0)
            return vfail(v, "patternProperties",
                         "cannot match property name '%s' against "
                         "pattern '%s' (the regex engine gave up)",
                         key, pat);
        if (m == 0)
            continue;
        matched = 1;
        if ((r = child(v, sub, val, key, klen)) != 0)
            return r;
    }
    if (matched || addl == NULL)
        return 0;
    if (json_is_false(addl))
        return vfail(v, "additionalProperties",
                     "property '%s' is not allowed (additionalProperties is false)", key);
    return child(v, addl, val, key, klen);
}

static int check_object(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const json_t *k, *dep;
    const char *key;
    size_t klen, n = json_object_size(inst);
    json_t *val, *sub;
    int r;

    if ((k = json_object_get(sch, "minProperties")) != NULL && (long long)n < count_of(k))
        return vfail(v, "minProperties", "object must have at least %lld properties, has %zu",
                     count_of(k), n);
    if ((k = json_object_get(sch, "maxProperties")) != NULL && (long long)n > count_of(k))
        return vfail(v, "maxProperties", "object must have at most %lld properties, has %zu",
                     count_of(k), n);
    if ((k = json_object_get(sch, "propertyNames")) != NULL && !json_is_true(k)) {
        json_object_keylen_foreach ((json_t *)inst, key, klen, val)
            if ((r = check_property_name(v, k, key, klen)) != 0)
                return r;
    }
    if (json_object_get(sch, "properties") != NULL ||
        json_object_get(sch, "patternProperties") != NULL ||
        json_object_get(sch, "additionalProperties") != NULL) {
        json_object_keylen_foreach ((json_t *)inst, key, klen, val)
            if ((r = check_member(v, sch, key, klen, val)) != 0)
                return r;
    }
    /* After the members, so a const "type" discriminator that fails is what a mismatched
     * anyOf branch reports, and explain_none can rank it below a real failure. */
    if ((k = json_object_get(sch, "required")) != NULL &&
        (r = check_required(v, k, inst, "required", NULL)) != 0)
        return r;
    if ((k = json_object_get(sch, "dependentRequired")) != NULL) {
        json_object_keylen_foreach ((json_t *)k, key, klen, sub)
            if (json_object_getn(inst, key, klen) != NULL &&
                (r = check_required(v, sub, inst, "dependentRequired", key)) != 0)
                return r;
    }
    if ((k = json_object_get(sch, "dependentSchemas")) != NULL) {
        json_object_keylen_foreach ((json_t *)k, key, klen, sub)
            if (json_object_getn(inst, key, klen) != NULL && (r = validate(v, sub, inst)) != 0)
                return r;
    }
    if ((dep = json_object_get(sch, "dependencies")) != NULL) {
        json_object_keylen_foreach ((json_t *)dep, key, klen, sub) {
            if (json_object_getn(inst, key, klen) == NULL)
                continue;
            r = json_is_array(sub) ? check_required(v, sub, inst, "dependencies", key)
                                   : validate(v, sub, inst);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

static int check_contains(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const json_t *c = json_object_get(sch, "contains");
    const json_t *mn = json_object_get(sch, "minContains"),
                 *mx = json_object_get(sch, "maxContains");
    long long lo = mn ? count_of(mn) : 1, hi = mx ? count_of(mx) : LLONG_MAX;
    struct jschema_error *saved = v->err;
    size_t i, found = 0;
    int r = 0;

    v->err = NULL;
    for (i = 0; i < json_array_size(inst) && (mx != NULL || (long long)found < lo); i++) {
        if ((r = item(v, c, json_array_get(inst, i), i)) == 0)
            found++;
        else if (r != ERR_INVALID)
            break;
        r = 0;
    }
    v->err = saved;
    if (r != 0)
        return r;
    if ((long long)found < lo && mn == NULL)
        return vfail(v, "contains", "array must contain an item matching the 'contains' schema");
    if ((long long)found < lo)
        return vfail(v, "minContains",
                     "array must contain at least %lld items matching 'contains', found %zu", lo,
                     found);
    if ((long long)found > hi)
        return vfail(v, "maxContains",
                     "array must contain at most %lld items matching 'contains', found %zu", hi,
                     found);
    return 0;
}

static int check_array(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const json_t *k, *items = json_object_get(sch, "items"), *prefix, *rest;
    size_t n = json_array_size(inst), npre, i, a, b;
    const char *restkw = "items";
    int r;

    if ((k = json_object_get(sch, "minItems")) != NULL && (long long)n < count_of(k))
        return vfail(v, "minItems", "array must have at least %lld items, has %zu", count_of(k), n);
    if ((k = json_object_get(sch, "maxItems")) != NULL && (long long)n > count_of(k))
        return vfail(v, "maxItems", "array must have at most %lld items, has %zu", count_of(k), n);
    if (json_is_true(json_object_get(sch, "uniqueItems"))) {
        v->steps += n;
        if (find_duplicate(inst, &a, &b))
            return vfail(v, "uniqueItems",
                         "array items %zu and %zu are equal; items must be "
                         "unique",
                         a, b);
    }
    prefix = json_object_get(sch, "prefixItems");
    if (prefix == NULL && json_is_array(items))
        prefix = items;
    rest = json_is_array(items) ? NULL : items;
    if (rest == NULL && prefix != NULL) {
        rest = json_object_get(sch, "additionalItems");
        restkw = "additionalItems";
    }
    npre = json_array_size(prefix);
    for (i = 0; i < n; i++) {
        if (i < npre) {
            r = item(v, json_array_get(prefix, i), json_array_get(inst, i), i);
        } else if (rest == NULL) {
            break;
        } else if (json_is_false(rest)) {
            return vfail(v, restkw, "array must have at most %zu items, has %zu", npre, n);
        } else {
            r = item(v, rest, json_array_get(inst, i), i);
        }
        if (r != 0)
            return r;
    }
    if (json_object_get(sch, "contains") != NULL)
        return check_contains(v, sch, inst);
    return 0;
}

static int check_string(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const char *s = json_string_value(inst);
    const json_t *mn = json_object_get(sch, "minLength"), *mx = json_object_get(sch, "maxLength");
    const json_t *pat = json_object_get(sch, "pattern");
    size_t n = json_string_length(inst), cps = 0, i;
    int m;

    if (mn != NULL || mx != NULL) {
        for (i = 0; i < n; i++)
            cps += ((unsigned char)s[i] & 0xC0) != 0x80; /* code points, not bytes */
        if (mn != NULL && (long long)cps < count_of(mn))
            return vfail(v, "minLength", "string must be at least %lld characters long, has %zu",
                         count_of(mn), cps);
        if (mx != NULL && (long long)cps > count_of(mx))
            return vfail(v, "maxLength", "string must be at most %lld characters long, has %zu",
                         count_of(mx), cps);
    }
    if (pat != NULL && (m = re_match(v->s, json_string_value(pat), s, n)) != 1) {
        if (m < 0)
            return vfail(v, "pattern",
                         "cannot match the string against pattern '%s' (the "
                         "regex engine gave up)",
                         json_string_value(pat));
        return vfail(v, "pattern", "string does not match pattern '%s'", json_string_value(pat));
    }
    return 0;
}

static int is_multiple(const json_t *x, const json_t *m)
{
    double q, d;

    if (json_is_integer(x) && json_is_integer(m))
        return json_integer_value(x) % json_integer_value(m) == 0;
    q = json_number_value(x) / json_number_value(m);
    if (!isfinite(q)) /* overflow: fmod is exact */
        return fmod(json_number_value(x), json_number_value(m)) == 0;
    d = fabs(q - nearbyint(q));
    return d <= fmax(1e-9, fabs(q) * 4 * DBL_EPSILON);
}

static int check_number(struct vctx *v, const json_t *sch, const json_t *inst)
{
    static const char *const kws[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                      "multipleOf"};
    char a[40] = "", b[40] = "";
    const json_t *k;
    size_t i;
    int c, bad;

    for (i = 0; i < sizeof kws / sizeof kws[0]; i++) {
        if ((k = json_object_get(sch, kws[i])) == NULL)
            continue;
        c = i < 4 ? num_cmp(inst, k) : 0;
        if (i == 0)
            bad = c < 0;
        else if (i == 1)
            bad = c > 0;
        else if (i == 2)
            bad = c <= 0;
        else if (i == 3)
            bad = c >= 0;
        else
            bad = !is_multiple(inst, k);
        if (!bad)
            continue;
        if (v->err != NULL) {
            fmt_num(inst, a, sizeof a);
            fmt_num(k, b, sizeof b);
        }
        switch (i) {
        case 0: return vfail(v, kws[i], "value %s is less than minimum %s", a, b);
        case 1: return vfail(v, kws[i], "value %s is greater than maximum %s", a, b);
        case 2:
            return vfail(v, kws[i], "value %s must be greater than %s (exclusiveMinimum)", a, b);
        case 3: return vfail(v, kws[i], "value %s must be less than %s (exclusiveMaximum)", a, b);
        default: return vfail(v, kws[i], "value %s is not a multiple of %s", a, b);
        }
    }
    return 0;
}

static int is_shallow(const char *kw)
{
    return strcmp(kw, "type") == 0 || strcmp(kw, "const") == 0 || strcmp(kw, "enum") == 0 ||
           strcmp(kw, "false") == 0;
}

/* No subschema of anyOf/oneOf matched: report the failure of the one that got furthest: one
 * that failed on something other than type/const/enum (a discriminator that did not match),
 * then the deepest instance path, then the first. */
static int explain_none(struct vctx *v, const json_t *list, const json_t *inst, const char *kw)
{
    struct jschema_error *best = xcalloc(1, sizeof *best), *cur = xmalloc(sizeof *cur), *t;
    size_t i, n = json_array_size(list), bi = 0;
    int r = 0, score, bscore = -1;

    for (i = 0; i < n; i++) {
        if ((r = redirect(v, json_array_get(list, i), inst, cur)) == 0)
            continue;
        if (r != ERR_INVALID)
            goto out;
        score = (int)strlen(cur->path) + (is_shallow(cur->keyword) ? 0 : 1 << 16);
        if (score > bscore) {
            t = best;
            best = cur;
            cur = t;
            bscore = score;
            bi = i;
        }
    }
    if (strcmp(best->path, v->path) != 0)
        r = vfail(v, kw,
                  "value does not match any of the %zu schemas in %s (closest is #%zu, "
                  "which fails at '%s': %s)",
                  n, kw, bi, best->path, best->message);
    else
        r = vfail(v, kw,
                  "value does not match any of the %zu schemas in %s (closest is #%zu: "
                  "%s)",
                  n, kw, bi, best->message);
out:
    free(best);
    free(cur);
    return r;
}

static int check_of(struct vctx *v, const json_t *list, const json_t *inst, const char *kw,
                    int exactly_one)
{
    size_t i, first = 0, nmatch = 0;
    int r;

    for (i = 0; i < json_array_size(list); i++) {
        r = redirect(v, json_array_get(list, i), inst, NULL);
        if (r != 0 && r != ERR_INVALID)
            return r;
        if (r != 0)
            continue;
        if (!exactly_one)
            return 0;
        if (nmatch++ == 0)
            first = i;
        else
            return vfail(v, kw,
                         "value matches more than one schema in oneOf (#%zu and #%zu); it "
                         "must match exactly one",
                         first, i);
    }
    if (nmatch == 1)
        return 0;
    return v->err ? explain_none(v, list, inst, kw) : ERR_INVALID;
}

static int check_applicators(struct vctx *v, const json_t *sch, const json_t *inst)
{
    const json_t *k, *t;
    size_t i;
    json_t *sub;
    int r;

    if ((k = json_object_get(sch, "$ref")) != NULL) {
        if ((t = jschema_pmap_get(&v->s->refs, k)) == NULL)
            return ERR_INTERNAL;
        if (v->hops >= MAX_REF_HOPS)
            return over_limit(v, "more than 256 nested $ref hops");
        for (i = 0; i < v->hops; i++) /* same schema, same value: it would never end */
            if (v->trail[i].sch == t && v->trail[i].inst == inst)
                return over_limit(v, "a $ref cycle that never reaches a deeper value");
        v->trail[v->hops].sch = t;
        v->trail[v->hops].inst = inst;
        v->hops++;
        r = validate(v, t, inst);
        v->hops--;
        if (r != 0)
            return r;
    }
    if ((k = json_object_get(sch, "allOf")) != NULL) {
        json_array_foreach (k, i, sub)
            if ((r = validate(v, sub, inst)) != 0)
                return r;
    }
    if ((k = json_object_get(sch, "anyOf")) != NULL && (r = check_of(v, k, inst, "anyOf", 0)) != 0)
        return r;
    if ((k = json_object_get(sch, "oneOf")) != NULL && (r = check_of(v, k, inst, "oneOf", 1)) != 0)
        return r;
    if ((k = json_object_get(sch, "not")) != NULL) {
        r = redirect(v, k, inst, NULL);
        if (r == 0)
            return vfail(v, "not", "value must not match the schema in 'not'");
        if (r != ERR_INVALID)
            return r;
    }
    if ((k = json_object_get(sch, "if")) != NULL) {
        r = redirect(v, k, inst, NULL);
        if (r != 0 && r != ERR_INVALID)
            return r;
        t = json_object_get(sch, r == 0 ? "then" : "else");
        if (t != NULL && (r = validate(v, t, inst)) != 0)
            return r;
    }
    return 0;
}

static int validate(struct vctx *v, const json_t *sch, const json_t *inst)
{
    int r;

    if (json_is_true(sch))
        return 0;
    if (!json_is_object(sch))
        return vfail(v, "false", "no value is allowed here (the schema is false)");
    if (++v->steps > MAX_STEPS)
        return over_limit(v, "validation took more than 2000000 steps");
    if (v->frames >= MAX_FRAMES)
        return over_limit(v, "schemas are applied more than 1024 levels deep");
    v->frames++;
    r = check_generic(v, sch, inst);
    if (r == 0 && json_is_object(inst))
        r = check_object(v, sch, inst);
    else if (r == 0 && json_is_array(inst))
        r = check_array(v, sch, inst);
    else if (r == 0 && json_is_string(inst))
        r = check_string(v, sch, inst);
    else if (r == 0 && json_is_number(inst))
        r = check_number(v, sch, inst);
    if (r == 0)
        r = check_applicators(v, sch, inst);
    v->frames--;
    return r;
}

int jschema_validate(const struct jschema *s, const char *ref, const json_t *instance,
                     struct jschema_error *err)
{
    const json_t *sch;
    struct vctx *v = NULL;
    const char *why;
    json_t *t;
    char *doc = NULL;
    int r = ERR_USAGE;

    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (s == NULL || instance == NULL)
        goto out;
    sch = s->root;
    if (ref != NULL && *ref != '\0') {
        r = jschema_ref_resolve(s, s->root_base, ref, &t, &doc, &why);
        if (r != 0 || jschema_pmap_get(&s->schemas, t) == NULL) {
            if (err != NULL) {
                snprintf(err->keyword, sizeof err->keyword, "$ref");
                snprintf(err->message, sizeof err->message, "no schema at '%s'%s%s", ref,
                         r ? ": " : "", r ? why : "");
            }
            r = ERR_NOTFOUND;
            goto out;
        }
        sch = t;
    }
    v = xcalloc(1, sizeof *v);
    v->s = s;
    v->err = err;
    r = validate(v, sch, instance);
    if (r == ERR_DEPTH && err != NULL) {
        memset(err, 0, sizeof *err);
        snprintf(err->keyword, sizeof err->keyword, "depth");
        snprintf(err->message, sizeof err->message, "validation stopped: %s",
                 v->limit ? v->limit : "too deep");
    } else if (r != 0 && r != ERR_INVALID && err != NULL && err->keyword[0] == '\0') {
        snprintf(err->message, sizeof err->message, "validation failed: %s", err_str(r));
    }
out:
    free(v);
    free(doc);
    return r;
}
