/* A JSON Schema validator for the keywords MCP tools use (2020-12, with the draft-07 spellings
 * `definitions` and array-form `items`/`additionalItems` understood too, so the official MCP
 * schema files and the JSON-Schema-Test-Suite drafts can be checked).
 *
 * Supported: type, enum, const, properties, patternProperties, additionalProperties, required,
 * propertyNames, minProperties, maxProperties, dependentRequired, dependentSchemas, items,
 * prefixItems, additionalItems (draft-07), contains, minContains, maxContains, minItems,
 * maxItems, uniqueItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
 * minLength, maxLength (in code points), pattern (PCRE2, ECMAScript-like), format (annotation
 * only, never asserted), $ref to the same document ("#", "#/json/pointer", "#anchor", and
 * "$id"-relative fragments), $defs/definitions, $anchor, allOf, anyOf, oneOf, not,
 * if/then/else, boolean schemas. A network $ref is never fetched: it is a schema error.
 *
 * Thread-safe after jschema_new(): validation does not modify the schema (the regex cache is
 * filled at compile time).
 *
 * Every $ref of the document is resolved by jschema_new(), so one that cannot be (a remote or
 * missing target) makes the whole schema invalid, even when nothing uses it. Keywords beside a
 * $ref apply (2020-12), also in draft-07 documents; unknown keywords, including unevaluated*,
 * $dynamicRef and content*, are ignored. Error paths: "required", "dependentRequired" and
 * "additionalProperties": false name the object, the message names the property. */
#ifndef MCPGATE_MCP_JSONSCHEMA_H
#define MCPGATE_MCP_JSONSCHEMA_H

#include <jansson.h>

#include "core/err.h"

struct jschema;

struct jschema_error {
    char path[256];    /* JSON pointer into the instance, "" for the root ("/a/0/b") */
    char keyword[32];  /* the keyword that failed, e.g. "required", "type", "minimum" */
    char message[256]; /* one sentence a model can act on: "property 'x' is required" */
};

/* Compiles a schema document. The document is referenced (json_incref), not copied, and
 * pointers into it are kept: it must not be modified until jschema_free().
 * On a malformed schema returns ERR_INVALID and, when err is non-NULL, a description. */
int jschema_new(json_t *root, struct jschema **out /* OUT */, char **err /* OUT, caller frees */)
    ERR_WARN_UNUSED;
void jschema_free(struct jschema *s);

/* Validates instance against the schema, or against the subschema named by ref (a fragment
 * such as "#/$defs/CallToolResult"; NULL means the root). Returns 0 when valid, ERR_INVALID
 * when not (err filled with the first failure), ERR_NOTFOUND when ref names nothing, ERR_DEPTH
 * when the instance or $ref recursion is too deep. ERR_DEPTH covers every cap: the schema
 * descending more than 64 levels into the instance, 256 $ref hops on one path, a $ref cycle
 * that returns to the same (schema, value) pair, 1024 nested subschemas, and 2,000,000 steps
 * (exponential anyOf/oneOf); err then has keyword "depth" and says which. */
int jschema_validate(const struct jschema *s, const char *ref, const json_t *instance,
                     struct jschema_error *err /* OUT, may be NULL */) ERR_WARN_UNUSED;

#endif
