/* JSON Schema compilation (see jsonschema.h; validation is in jsonschema_validate.c).
 *
 * jschema_new() walks every schema position of the document once (never enum/const values or
 * unknown keywords): it checks keyword types, compiles each regex into s->regex, records every
 * $id and $anchor in s->index and resolves every $ref to the json_t * it names (s->refs), so
 * jschema_validate() only reads. Validation is a recursive walk over (schema, instance) pairs
 * with caps on instance depth, $ref hops on the current path, stack frames and total steps.
 *
 * Deliberate deviations: keywords beside a $ref always apply (2020-12), also in draft-07
 * documents where the spec says they are ignored; unknown keywords (unevaluated*, $dynamicRef,
 * contentSchema, ...) are ignored; with PCRE2_UCP, \d and \w also match non-ASCII digits and
 * letters (ECMA-262 keeps them ASCII). */
#include "mcp/jsonschema_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define MAX_SCHEMA_DEPTH 256   /* schema nesting walked by jschema_new */
#define MAX_URI 4096           /* bytes of a resolved $id or $ref */
#define MAX_PATTERN 8192       /* bytes of one regex */
#define RE_MATCH_LIMIT 1000000 /* PCRE2 backtracking budget per match */

static size_t pmap_slot(const struct pmap *m, const void *key)
{
    uint64_t x = (uint64_t)(uintptr_t)key;
    size_t i;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    for (i = (size_t)x & (m->cap - 1); m->e[i].key != NULL && m->e[i].key != key;)
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *jschema_pmap_get(const struct pmap *m, const void *key)
{
    return m->cap ? m->e[pmap_slot(m, key)].val : NULL;
}

static void pmap_put(struct pmap *m, const void *key, void *val)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        struct pmap old = *m;

        m->cap = old.cap ? old.cap * 2 : 64;
        m->e = xcalloc(m->cap, sizeof *m->e);
        for (i = 0; i < old.cap; i++)
            if (old.e[i].key != NULL)
                m->e[pmap_slot(m, old.e[i].key)] = old.e[i];
        free(old.e);
    }
    i = pmap_slot(m, key);
    if (m->e[i].key == NULL)
        m->n++;
    m->e[i].key = key;
    m->e[i].val = val;
}

static void pmap_free(struct pmap *m)
{
    free(m->e);
    memset(m, 0, sizeof *m);
}

size_t jschema_path_push(char *path, size_t cap, size_t *len, const char *seg, size_t seglen)
{
    size_t old = *len, need = 1, i, l;

    for (i = 0; i < seglen; i++)
        need += (seg[i] == '~' || seg[i] == '/') ? 2 : 1;
    if (old + need >= cap)
        return old;
    l = old;
    path[l++] = '/';
    for (i = 0; i < seglen; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            path[l++] = '~';
            path[l++] = seg[i] == '~' ? '0' : '1';
        } else {
            path[l++] = seg[i];
        }
    }
    path[l] = '\0';
    *len = l;
    return old;
}

void jschema_path_pop(char *path, size_t *len, size_t old)
{
    *len = old;
    path[old] = '\0';
}

int jschema_is_integral(double d)
{
    return isfinite(d) && d == trunc(d);
}

/* Whether a keyword value is a non-negative integer (1.0 counts). */
static int is_count(const json_t *j)
{
    if (json_is_integer(j))
        return json_integer_value(j) >= 0;
    return json_is_real(j) && jschema_is_integral(json_real_value(j)) && json_real_value(j) >= 0;
}

/* ---- URIs and references ---- */

/* Length of the "scheme:" prefix of a URI reference, 0 when it is relative. */
static size_t scheme_len(const char *u, size_t n)
{
    size_t i;

    if (n == 0 || !isalpha((unsigned char)u[0]))
        return 0;
    for (i = 1; i < n && (isalnum((unsigned char)u[i]) || strchr("+-.", u[i]) != NULL); i++)
        ;
    return (i < n && u[i] == ':') ? i + 1 : 0;
}

/* End of the "//authority" that may start at u + from. */
static size_t authority_end(const char *u, size_t from)
{
    if (u[from] != '/' || u[from + 1] != '/')
        return from;
    return from + 2 + strcspn(u + from + 2, "/?#");
}

/* RFC 3986 5.2.4 remove_dot_segments on the NUL-terminated path p, in place. */
static void remove_dots(char *p)
{
    char *in = xstrdup(p), *s = in;
    size_t o = 0;

    while (*s != '\0') {
        if (strncmp(s, "../", 3) == 0) {
            s += 3;
        } else if (strncmp(s, "./", 2) == 0 || strncmp(s, "/./", 3) == 0) {
            s += 2;
        } else if (strcmp(s, "/.") == 0) {
            s[1] = '\0';
        } else if (strncmp(s, "/../", 4) == 0 || strcmp(s, "/..") == 0) {
            s += s[3] == '/' ? 3 : 2; /* "/../x" -> "/x", "/.." -> "/" */
            *s = '/';
            while (o > 0 && p[--o] != '/')
                ;
        } else if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
            break;
        } else {
            do
                p[o++] = *s++;
            while (*s != '\0' && *s != '/');
        }
    }
    p[o] = '\0';
    free(in);
}

/* Resolves the first n bytes of ref (no fragment) against base (no fragment), RFC 3986 5.2.
 * Returns a new string, or NULL when the result would pass MAX_URI. */
static char *uri_resolve(const char *base, const char *ref, size_t n)
{
    size_t bl = strlen(base), bs = scheme_len(base, bl), keep, pathpos, be, q, i;
    const char *extra = "";
    char *out;

    if (bl + n + 2 > MAX_URI)
        return NULL;
    if (n == 0)
        return xstrdup(base);
    if (scheme_len(ref, n) != 0) {
        out = xstrndup(ref, n);
        remove_dots(out + authority_end(out, scheme_len(ref, n)));
        return out;
    }
    be = authority_end(base, bs);
    q = be + strcspn(base + be, "?");
    if (ref[0] == '/' && n > 1 && ref[1] == '/') {
        keep = bs;
    } else if (ref[0] == '/') {
        keep = be;
    } else if (ref[0] == '?') {
        keep = q;
    } else if (be > bs && q == be) {
        keep = be; /* "http://host" + "a" = "http://host/a" */
        extra = "/";
    } else {
        for (keep = be, i = be; i < q; i++)
            if (base[i] == '/')
                keep = i + 1;
    }
    out = xasprintf("%.*s%s%.*s", (int)keep, base, extra, (int)n, ref);
    if (ref[0] != '?') {
        pathpos = authority_end(out, scheme_len(out, strlen(out)));
        remove_dots(out + pathpos);
    }
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Percent-decodes in into out (which has room for strlen(in) + 1 bytes). */
static void pct_decode(const char *in, char *out)
{
    while (*in != '\0') {
        if (in[0] == '%' && hexval(in[1]) >= 0 && hexval(in[2]) >= 0) {
            *out++ = (char)(hexval(in[1]) * 16 + hexval(in[2]));
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
}

/* Evaluates a JSON pointer ("" or "/a/0/b~1c") from node; NULL when it names nothing. */
static json_t *pointer_get(json_t *node, const char *ptr)
{
    char *seg = xmalloc(strlen(ptr) + 1);
    size_t l;

    while (node != NULL && *ptr == '/') {
        for (l = 0, ptr++; *ptr != '\0' && *ptr != '/'; ptr++) {
            if (ptr[0] == '~' && (ptr[1] == '0' || ptr[1] == '1'))
                seg[l++] = *++ptr == '0' ? '~' : '/';
            else
                seg[l++] = *ptr;
        }
        seg[l] = '\0';
        if (json_is_object(node)) {
            node = json_object_getn(node, seg, l);
        } else if (json_is_array(node) && l > 0 && strspn(seg, "0123456789") == l &&
                   (l == 1 || seg[0] != '0')) {
            unsigned long long i;
            errno = 0;
            i = strtoull(seg, NULL, 10);
            node = (errno == 0 && i < json_array_size(node)) ? json_array_get(node, i) : NULL;
        } else {
            node = NULL;
        }
    }
    free(seg);
    return *ptr == '\0' ? node : NULL;
}

int jschema_ref_resolve(const struct jschema *s, const char *base, const char *ref, json_t **out,
                        char **doc, const char **why)
{
    const char *hash = strchr(ref, '#');
    char *d = NULL, *frag = NULL, *key = NULL;
    json_t *res, *t = NULL;
    int r = ERR_NOTFOUND;

    *out = NULL;
    *doc = NULL;
    *why = "the reference is too long";
    if ((d = uri_resolve(base, ref, hash ? (size_t)(hash - ref) : strlen(ref))) == NULL)
        goto out;
    if ((res = json_object_get(s->index, d)) == NULL) {
        *why = "it names another document, and remote references are never fetched";
        goto out;
    }
    hash = hash ? hash + 1 : "";
    frag = xmalloc(strlen(hash) + 1);
    pct_decode(hash, frag);
    if (frag[0] == '\0') {
        t = res;
    } else if (frag[0] == '/') {
        *why = "the JSON pointer names nothing in the document";
        t = pointer_get(res, frag);
    } else {
        *why = "no $anchor or $id in the document has that name";
        key = xasprintf("%s#%s", d, frag);
        t = json_object_get(s->index, key);
    }
    if (t == NULL)
        goto out;
    *out = t;
    *doc = d;
    d = NULL;
    r = 0;
out:
    free(d);
    free(frag);
    free(key);
    return r;
}

/* ---- compiling ---- */

struct pending {
    const json_t *ref; /* the "$ref" string node */
    char *base;        /* owned: base URI in scope at the $ref */
    char *where;       /* owned: schema location of the $ref, for messages */
};

struct cctx {
    struct jschema *s;
    pcre2_compile_context *ccx; /* owned */
    struct pending *pend;       /* owned */
    size_t npend, cappend;
    char path[512]; /* schema location being walked, a JSON pointer */
    size_t plen;
    unsigned depth;
    char *err; /* owned: the first error */
};

static int cerr(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cerr(struct cctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (c->err == NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        c->err = xasprintf("invalid schema at '#%s': %s", c->path, msg);
    }
    return ERR_INVALID;
}

enum kw_kind {
    K_SCHEMA,       /* a schema */
    K_SCHEMA_MAP,   /* object of schemas */
    K_PATTERN_MAP,  /* object of schemas keyed by regexes */
    K_SCHEMA_LIST,  /* non-empty array of schemas */
    K_ITEMS,        /* schema, or array of schemas (draft-07) */
    K_COUNT,        /* non-negative integer */
    K_NUMBER,       /* number */
    K_POSITIVE,     /* number > 0 */
    K_STRINGS,      /* array of strings */
    K_DEP_REQUIRED, /* object of arrays of strings */
    K_DEPENDENCIES, /* object of arrays of strings or schemas (draft-07) */
    K_BOOL,
    K_STRING,
    K_ARRAY,
    K_TYPE,    /* type name or array of them */
    K_PATTERN, /* a regex */
};

static const struct keyword {
    const char *name;
    enum kw_kind kind;
} keywords[] = {
    {"type", K_TYPE},
    {"enum", K_ARRAY},
    {"properties", K_SCHEMA_MAP},
    {"patternProperties", K_PATTERN_MAP},
    {"additionalProperties", K_SCHEMA},
    {"required", K_STRINGS},
    {"propertyNames", K_SCHEMA},
    {"minProperties", K_COUNT},
    {"maxProperties", K_COUNT},
    {"dependentRequired", K_DEP_REQUIRED},
    {"dependentSchemas", K_SCHEMA_MAP},
    {"dependencies", K_DEPENDENCIES},
    {"items", K_ITEMS},
    {"prefixItems", K_SCHEMA_LIST},
    {"additionalItems", K_SCHEMA},
    {"contains", K_SCHEMA},
    {"minContains", K_COUNT},
    {"maxContains", K_COUNT},
    {"minItems", K_COUNT},
    {"maxItems", K_COUNT},
    {"uniqueItems", K_BOOL},
    {"minimum", K_NUMBER},
    {"maximum", K_NUMBER},
    {"exclusiveMinimum", K_NUMBER},
    {"exclusiveMaximum", K_NUMBER},
    {"multipleOf", K_POSITIVE},
    {"minLength", K_COUNT},
    {"maxLength", K_COUNT},
    {"pattern", K_PATTERN},
    {"format", K_STRING},
    {"$defs", K_SCHEMA_MAP},
    {"definitions", K_SCHEMA_MAP},
    {"allOf", K_SCHEMA_LIST},
    {"anyOf", K_SCHEMA_LIST},
    {"oneOf", K_SCHEMA_LIST},
    {"not", K_SCHEMA},
    {"if", K_SCHEMA},
    {"then", K_SCHEMA},
    {"else", K_SCHEMA},
    {"$schema", K_STRING},
};

static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "string",  "integer"};

static int is_type_name(const json_t *j)
{
    size_t i;

    for (i = 0; json_is_string(j) && i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(json_string_value(j), type_names[i]) == 0)
            return 1;
    return 0;
}

static int are_strings(const json_t *j)
{
    size_t i;
    json_t *v;

    if (!json_is_array(j))
        return 0;
    json_array_foreach (j, i, v)
        if (!json_is_string(v))
            return 0;
    return 1;
}

static int re_compile(struct cctx *c, const char *pat, size_t len)
{
    PCRE2_UCHAR msg[160];
    PCRE2_SIZE off;
    pcre2_code *re;
    int code;

    if (jschema_pmap_get(&c->s->regex, pat) != NULL)
        return 0;
    if (len > MAX_PATTERN)
        return cerr(c, "regular expression longer than %d bytes", MAX_PATTERN);
    re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code,
                       &off, c->ccx);
    if (re == NULL) {
        pcre2_get_error_message(code, msg, sizeof msg);
        return cerr(c, "invalid regular expression '%s' at offset %zu: %s", pat, (size_t)off,
                    (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    pmap_put(&c->s->regex, pat, re);
    return 0;
}

static int index_add(struct cctx *c, const char *key, json_t *sch)
{
    json_t *old = json_object_get(c->s->index, key);

    if (old != NULL && old != sch)
        return cerr(c, "'%s' names two different schemas", key);
    if (json_object_set(c->s->index, key, sch) != 0)
        return cerr(c, "cannot index '%s'", key);
    return 0;
}

static int add_anchor(struct cctx *c, const char *base, const char *name, json_t *sch)
{
    char *key;
    int r;

    if (!isalpha((unsigned char)name[0]) && name[0] != '_')
        return cerr(c, "anchor '%s' must start with a letter or '_'", name);
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
        strlen(name))
        return cerr(c, "anchor '%s' may only hold letters, digits, '-', '_' and '.'", name);
    key = xasprintf("%s#%s", base, name);
    r = index_add(c, key, sch);
    free(key);
    return r;
}

/* Handles $id, $anchor and $ref of one schema object; *nb is the new base when $id sets one. */
static int walk_ids(struct cctx *c, json_t *sch, const char *base, char **nb /* OUT, owned */)
{
    json_t *id = json_object_get(sch, "$id"), *anchor = json_object_get(sch, "$anchor");
    json_t *ref = json_object_get(sch, "$ref");
    const char *b = base, *ids, *hash;
    struct pending *p;
    int r;

    *nb = NULL;
    if (id != NULL) {
        if (!json_is_string(id))
            return cerr(c, "\"$id\" must be a string");
        ids = json_string_value(id);
        hash = strchr(ids, '#');
        if (ids[0] != '\0' && hash != ids) { /* "" and "#foo" keep the base */
            if ((*nb = uri_resolve(base, ids, hash ? (size_t)(hash - ids) : strlen(ids))) == NULL)
                return cerr(c, "\"$id\" is too long");
            b = *nb;
            if ((r = index_add(c, b, sch)) != 0)
                return r;
        }
        if (hash != NULL && hash[1] != '\0' && (r = add_anchor(c, b, hash + 1, sch)) != 0)
            return r;
    }
    if (anchor != NULL) {
        if (!json_is_string(anchor))
            return cerr(c, "\"$anchor\" must be a string");
        if ((r = add_anchor(c, b, json_string_value(anchor), sch)) != 0)
            return r;
    }
    if (ref != NULL) {
        if (!json_is_string(ref))
            return cerr(c, "\"$ref\" must be a string");
        if (c->npend == c->cappend) {
            c->cappend = c->cappend ? c->cappend * 2 : 16;
            c->pend = xrealloc(c->pend, c->cappend * sizeof *c->pend);
        }
        p = &c->pend[c->npend++];
        p->ref = ref;
        p->base = xstrdup(b);
        p->where = xstrdup(c->path);
    }
    return 0;
}

static int walk(struct cctx *c, json_t *sch, const char *base);

static int walk_list(struct cctx *c, const char *key, json_t *v, const char *base, int nonempty)
{
    char seg[24];
    size_t i, old;
    json_t *sub;
    int r;

    if (!json_is_array(v) || (nonempty && json_array_size(v) == 0))
        return cerr(c, "\"%s\" must be a%s array of schemas", key, nonempty ? " non-empty" : "n");
    json_array_foreach (v, i, sub) {
        old = jschema_path_push(c->path, sizeof c->path, &c->plen, seg,
                                (size_t)snprintf(seg, sizeof seg, "%zu", i));
        r = walk(c, sub, base);
        jschema_path_pop(c->path, &c->plen, old);
        if (r != 0)
            return r;
    }
    return 0;
}

static int walk_keyword(struct cctx *c, const char *key, json_t *v, const char *base)
{
    const struct keyword *kw = NULL;
    const char *k;
    size_t i, klen, old, o2;
    json_t *sub;
    int r = 0;

    for (i = 0; i < sizeof keywords / sizeof keywords[0] && kw == NULL; i++)
        if (strcmp(key, keywords[i].name) == 0)
            kw = &keywords[i];
    if (kw == NULL)
        return 0; /* unknown keywords and annotations are ignored */
    old = jschema_path_push(c->path, sizeof c->path, &c->plen, key, strlen(key));
    switch (kw->kind) {
    case K_SCHEMA: r = walk(c, v, base); break;
    case K_SCHEMA_MAP:
    case K_PATTERN_MAP:
    case K_DEPENDENCIES:
    case K_DEP_REQUIRED:
        if (!json_is_object(v)) {
            r = cerr(c, "\"%s\" must be an object", key);
            break;
        }
        json_object_keylen_foreach (v, k, klen, sub) {
            if (kw->kind == K_PATTERN_MAP && (r = re_compile(c, k, klen)) != 0)
                break;
            o2 = jschema_path_push(c->path, sizeof c->path, &c->plen, k, klen);
            if (kw->kind == K_DEP_REQUIRED || (kw->kind == K_DEPENDENCIES && json_is_array(sub)))
                r = are_strings(sub) ? 0 : cerr(c, "must be an array of strings");
            else
                r = walk(c, sub, base);
            jschema_path_pop(c->path, &c->plen, o2);
            if (r != 0)
                break;
        }
        break;
    case K_SCHEMA_LIST: r = walk_list(c, key, v, base, 1); break;
    case K_ITEMS: r = json_is_array(v) ? walk_list(c, key, v, base, 0) : walk(c, v, base); break;
    case K_COUNT:
        if (!is_count(v))
            r = cerr(c, "\"%s\" must be a non-negative integer", key);
        break;
    case K_NUMBER:
        if (!json_is_number(v))
            r = cerr(c, "\"%s\" must be a number", key);
        break;
    case K_POSITIVE:
        if (!json_is_number(v) || json_number_value(v) <= 0)
            r = cerr(c, "\"%s\" must be a number greater than 0", key);
        break;
    case K_STRINGS:
        if (!are_strings(v))
            r = cerr(c, "\"%s\" must be an array of strings", key);
        break;
    case K_BOOL:
        if (!json_is_boolean(v))
            r = cerr(c, "\"%s\" must be true or false", key);
        break;
    case K_STRING:
        if (!json_is_string(v))
            r = cerr(c, "\"%s\" must be a string", key);
        break;
    case K_ARRAY:
        if (!json_is_array(v))
            r = cerr(c, "\"%s\" must be an array", key);
        break;
    case K_TYPE:
        if (json_is_array(v)) {
            json_array_foreach (v, i, sub)
                if (!is_type_name(sub))
                    r = ERR_INVALID;
        } else if (!is_type_name(v)) {
            r = ERR_INVALID;
        }
        if (r != 0)
            r = cerr(c, "\"type\" must be one of null, boolean, object, array, number, string, "
                        "integer, or an array of them");
        break;
    case K_PATTERN:
        if (!json_is_string(v))
            r = cerr(c, "\"pattern\" must be a string");
        else
            r = re_compile(c, json_string_value(v), json_string_length(v));
        break;
    }
    jschema_path_pop(c->path, &c->plen, old);
    return r;
}

static int walk(struct cctx *c, json_t *sch, const char *base)
{
    const char *key;
    char *nb = NULL;
    json_t *v;
    int r = 0;

    if (jschema_pmap_get(&c->s->schemas, sch) != NULL)
        return 0;
    if (!json_is_object(sch) && !json_is_boolean(sch))
        return cerr(c, "a schema must be an object or a boolean");
    pmap_put(&c->s->schemas, sch, (void *)1);
    if (json_is_boolean(sch))
        return 0;
    if (c->depth >= MAX_SCHEMA_DEPTH)
        return cerr(c, "schemas are nested more than %d levels deep", MAX_SCHEMA_DEPTH);
    c->depth++;
    if ((r = walk_ids(c, sch, base, &nb)) != 0)
        goto out;
    json_object_foreach (sch, key, v) {
        if ((r = walk_keyword(c, key, v, nb ? nb : base)) != 0)
            goto out;
    }
out:
    c->depth--;
    free(nb);
    return r;
}

/* Resolves every $ref found by the walk; targets not walked yet (a pointer into a place that
 * is not a schema position) are walked too, which may queue more references. */
static int resolve_refs(struct cctx *c)
{
    const char *why, *ref;
    struct pending *p;
    json_t *t;
    char *doc;
    size_t i;
    int r;

    for (i = 0; i < c->npend; i++) {
        p = &c->pend[i];
        ref = json_string_value(p->ref);
        snprintf(c->path, sizeof c->path, "%s/$ref", p->where);
        c->plen = strlen(c->path);
        if (jschema_ref_resolve(c->s, p->base, ref, &t, &doc, &why) != 0)
            return cerr(c, "cannot resolve \"$ref\": \"%s\": %s", ref, why);
        pmap_put(&c->s->refs, p->ref, t);
        r = walk(c, t, doc);
        free(doc);
        if (r != 0)
            return r;
    }
    return 0;
}

void jschema_free(struct jschema *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->regex.cap; i++)
        if (s->regex.e[i].key != NULL)
            pcre2_code_free(s->regex.e[i].val);
    pmap_free(&s->regex);
    pmap_free(&s->refs);
    pmap_free(&s->schemas);
    pcre2_match_context_free(s->mctx);
    json_decref(s->index);
    json_decref(s->root);
    free(s->root_base);
    free(s);
}

int jschema_new(json_t *root, struct jschema **out, char **err)
{
    struct jschema *s = NULL;
    struct cctx c;
    json_t *id;
    size_t i;
    int r = ERR_INVALID;

    memset(&c, 0, sizeof c);
    *out = NULL;
    if (err != NULL)
        *err = NULL;
    if (root == NULL) {
        c.err = xstrdup("no schema");
        goto out;
    }
    s = xcalloc(1, sizeof *s);
    s->root = json_incref(root);
    s->index = json_object();
    s->mctx = pcre2_match_context_create(NULL);
    c.ccx = pcre2_compile_context_create(NULL);
    if (s->index == NULL || s->mctx == NULL || c.ccx == NULL) {
        r = ERR_NOMEM;
        goto out;
    }
    pcre2_set_match_limit(s->mctx, RE_MATCH_LIMIT);
    pcre2_set_compile_extra_options(c.ccx, PCRE2_EXTRA_ALT_BSUX); /* \uhhhh as in ECMA-262 */
    c.s = s;
    id = json_object_get(root, "$id");
    if (json_is_string(id))
        s->root_base = uri_resolve("", json_string_value(id), strcspn(json_string_value(id), "#"));
    else
        s->root_base = xstrdup("");
    if (s->root_base == NULL) {
        c.err = xstrdup("\"$id\" is too long");
        goto out;
    }
    if (json_object_set(s->index, s->root_base, root) != 0) {
        c.err = xstrdup("cannot index the root");
        goto out;
    }
    if ((r = walk(&c, root, "")) != 0 || (r = resolve_refs(&c)) != 0)
        goto out;
    *out = s;
    s = NULL;
    r = 0;
out:
    if (r != 0 && err != NULL) {
        *err = c.err ? c.err : xstrdup(err_str(r));
        c.err = NULL;
    }
    free(c.err);
    for (i = 0; i < c.npend; i++) {
        free(c.pend[i].base);
        free(c.pend[i].where);
    }
    free(c.pend);
    pcre2_compile_context_free(c.ccx);
    jschema_free(s);
    return r;
}
