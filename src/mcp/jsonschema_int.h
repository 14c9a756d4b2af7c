/* Private to src/mcp/jsonschema*.c: the compiled schema and the helpers both halves share.
 * jsonschema.c compiles (walk, $id/$anchor index, $ref resolution, regexes); jsonschema_validate.c
 * validates. */
#ifndef MCPGATE_MCP_JSONSCHEMA_INT_H
#define MCPGATE_MCP_JSONSCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stddef.h>

#include "mcp/jsonschema.h"

/* An open-addressing map from pointer to pointer; keys are never NULL. */
struct pmap_ent {
    const void *key;
    void *val;
};

struct pmap {
    struct pmap_ent *e; /* owned */
    size_t cap, n;
};

struct jschema {
    json_t *root;              /* referenced */
    json_t *index;             /* owned: "uri" and "uri#anchor" -> schema (a node of root) */
    char *root_base;           /* owned: base URI of the root, "" when it has no $id */
    struct pmap regex;         /* pattern (const char * inside root) -> pcre2_code * (owned) */
    struct pmap refs;          /* "$ref" string node -> target schema (borrowed from root) */
    struct pmap schemas;       /* every schema node walked -> (void *)1 */
    pcre2_match_context *mctx; /* owned, read-only once built */
};

void *jschema_pmap_get(const struct pmap *m, const void *key);

/* Appends "/" + seg, escaped as a JSON pointer token, to path; returns the old length for
 * jschema_path_pop. A segment that does not fit is left out: paths are capped, not grown. */
size_t jschema_path_push(char *path, size_t cap, size_t *len, const char *seg, size_t seglen);
void jschema_path_pop(char *path, size_t *len, size_t old);

/* Finite with no fractional part. */
int jschema_is_integral(double d);

/* Finds what ref, resolved against base, names in the document of s. On success *out is the
 * target and *doc (owned by the caller) the URI of the resource holding it; on failure returns
 * ERR_NOTFOUND and *why says why. Never looks outside the document. */
int jschema_ref_resolve(const struct jschema *s, const char *base, const char *ref,
                        json_t **out /* OUT */, char **doc /* OUT */,
                        const char **why /* OUT */) ERR_WARN_UNUSED;

#endif
