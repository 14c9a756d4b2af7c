/* Unit tests of src/mcp/jsonschema*.c: every keyword, the error report (path, keyword,
 * message), the 2020-12 keywords the draft-07 suite lacks, $ref forms and cycles, depth caps,
 * malformed schemas, and the official MCP schemas (env MCPGATE_SCHEMA_DIR, else
 * $MCPGATE_SOURCE_DIR/../shared/mcp-schema). Schemas and instances in the tables are written
 * with ' for " to keep them readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonschema.h"

/* Parses JSON written with ' for ". */
static json_t *J(const char *text)
{
    char *s = strdup(text), *p;
    json_error_t jerr;
    json_t *j;

    assert_non_null(s);
    for (p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    free(s);
    return j;
}

struct vcase {
    const char *schema, *instance;
    int want;                         /* 0, ERR_INVALID, ERR_DEPTH */
    const char *path, *keyword, *msg; /* checked when want != 0; msg is a substring */
};

/* clang-format off */
#define OK(schema, inst) {schema, inst, 0, NULL, NULL, NULL}
#define BAD(schema, inst, path, kw, msg) {schema, inst, ERR_INVALID, path, kw, msg}
#define DEEP(schema, inst) {schema, inst, ERR_DEPTH, NULL, "depth", NULL}

static const struct vcase vcases[] = {
    /* type */
    OK("{'type':'integer'}", "1"),
    OK("{'type':'integer'}", "1.0"),
    BAD("{'type':'integer'}", "1.5", "", "type", "expected integer, got number"),
    BAD("{'type':'integer'}", "'x'", "", "type", "expected integer, got string"),
    OK("{'type':'number'}", "1"),
    OK("{'type':['string','null']}", "null"),
    BAD("{'type':['string','null']}", "3", "", "type", "expected string or null, got integer"),
    BAD("{'type':'boolean'}", "0", "", "type", "expected boolean, got integer"),
    BAD("{'type':'object'}", "[]", "", "type", "expected object, got array"),
    /* enum, const: JSON equality, 1 == 1.0 */
    OK("{'enum':[1,'a',null]}", "1.0"),
    OK("{'enum':[{'a':[1,2]}]}", "{'a':[1.0,2]}"),
    BAD("{'enum':['a','b']}", "'c'", "", "enum", "value must be one of [\"a\",\"b\"]"),
    BAD("{'enum':[0]}", "false", "", "enum", NULL),
    OK("{'const':'2.0'}", "'2.0'"),
    OK("{'const':1}", "1.0"),
    OK("{'const':{'a':1,'b':[true]}}", "{'b':[true],'a':1}"),
    BAD("{'const':{'a':1}}", "{'a':2}", "", "const", "value must be {\"a\":1}"),
    BAD("{'const':false}", "0", "", "const", NULL),
    /* objects */
    BAD("{'type':'object','required':['count']}", "{}", "", "required",
        "property 'count' is required"),
    BAD("{'properties':{'a':{'properties':{'b':{'type':'integer','maximum':255}}}}}",
        "{'a':{'b':300}}", "/a/b", "maximum", "value 300 is greater than maximum 255"),
    BAD("{'properties':{'a/b':{'properties':{'c~d':{'type':'string'}}}}}", "{'a/b':{'c~d':1}}",
        "/a~1b/c~0d", "type", NULL),
    BAD("{'properties':{'a':{}},'additionalProperties':false}", "{'a':1,'extra':2}", "",
        "additionalProperties", "property 'extra' is not allowed (additionalProperties is false)"),
    BAD("{'additionalProperties':{'type':'string'}}", "{'x':1}", "/x", "type", NULL),
    BAD("{'properties':{'a':false}}", "{'a':1}", "", "properties", "property 'a' is not allowed"),
    OK("{'patternProperties':{'^x-':{'type':'integer'}},'additionalProperties':false}",
       "{'x-a':1}"),
    BAD("{'patternProperties':{'^x-':{'type':'integer'}},'additionalProperties':false}",
        "{'x-a':'s'}", "/x-a", "type", NULL),
    BAD("{'patternProperties':{'^x-':{'type':'integer'}},'additionalProperties':false}",
        "{'y':1}", "", "additionalProperties", "property 'y' is not allowed"),
    BAD("{'propertyNames':{'maxLength':3}}", "{'abc':1,'abcd':1}", "", "propertyNames",
        "property name 'abcd' is not allowed: string must be at most 3 characters long"),
    BAD("{'minProperties':2}", "{'a':1}", "", "minProperties", "at least 2 properties, has 1"),
    BAD("{'maxProperties':1}", "{'a':1,'b':2}", "", "maxProperties", "at most 1 properties"),
    OK("{'dependentRequired':{'card':['billing']}}", "{'card':1,'billing':2}"),
    OK("{'dependentRequired':{'card':['billing']}}", "{'billing':2}"),
    BAD("{'dependentRequired':{'card':['billing']}}", "{'card':1}", "", "dependentRequired",
        "property 'billing' is required when 'card' is present"),
    BAD("{'dependentSchemas':{'card':{'required':['billing']}}}", "{'card':1}", "", "required",
        "property 'billing' is required"),
    OK("{'dependentSchemas':{'card':false}}", "{'other':1}"),
    BAD("{'dependencies':{'a':['b']}}", "{'a':1}", "", "dependencies", "'b' is required"),
    BAD("{'dependencies':{'a':{'properties':{'b':{'type':'string'}}}}}", "{'a':1,'b':2}", "/b",
        "type", NULL),
    OK("{'properties':{'pattern':{'type':'string'},'$ref':{'type':'integer'}},"
       "'enum':[{'pattern':'x','$ref':1}],'const':{'pattern':'x','$ref':1}}",
       "{'pattern':'x','$ref':1}"),
    /* arrays */
    BAD("{'items':{'type':'integer'}}", "[1,'x']", "/1", "type", NULL),
    OK("{'prefixItems':[{'type':'integer'},{'type':'string'}],'items':false}", "[1,'a']"),
    OK("{'prefixItems':[{'type':'integer'},{'type':'string'}],'items':false}", "[1]"),
    BAD("{'prefixItems':[{'type':'integer'},{'type':'string'}],'items':false}", "[1,'a',3]", "",
        "items", "array must have at most 2 items, has 3"),
    BAD("{'prefixItems':[{'type':'integer'},{'type':'string'}]}", "[1,2]", "/1", "type", NULL),
    OK("{'prefixItems':[{'type':'string'}],'items':{'type':'integer'}}", "['a',1,2]"),
    BAD("{'prefixItems':[{'type':'string'}],'items':{'type':'integer'}}", "['a',1,'b']", "/2",
        "type", NULL),
    BAD("{'items':[{}],'additionalItems':false}", "[1,2]", "", "additionalItems", NULL),
    BAD("{'items':[{}],'additionalItems':{'type':'string'}}", "[1,2]", "/1", "type", NULL),
    OK("{'additionalItems':false}", "[1,2]"),
    OK("{'contains':{'type':'integer'}}", "['a',1]"),
    BAD("{'contains':{'type':'integer'}}", "['a']", "", "contains", "'contains'"),
    BAD("{'contains':{'type':'integer'}}", "[]", "", "contains", NULL),
    OK("{'contains':{'const':1},'minContains':2}", "[1,2,1]"),
    BAD("{'contains':{'const':1},'minContains':2}", "[1,2]", "", "minContains",
        "at least 2 items matching 'contains', found 1"),
    BAD("{'contains':{'const':1},'maxContains':1}", "[1,1]", "", "maxContains",
        "at most 1 items matching 'contains', found 2"),
    OK("{'contains':{'const':1},'minContains':0}", "[]"),
    OK("{'minContains':5}", "[]"),
    BAD("{'minItems':2}", "[1]", "", "minItems", "at least 2 items, has 1"),
    BAD("{'maxItems':1}", "[1,2]", "", "maxItems", "at most 1 items, has 2"),
    BAD("{'uniqueItems':true}", "[1,{'a':1},1.0]", "", "uniqueItems", "items 0 and 2 are equal"),
    BAD("{'uniqueItems':true}", "[{'a':1,'b':2},{'b':2,'a':1}]", "", "uniqueItems", NULL),
    BAD("{'uniqueItems':true}", "[[1],[1.0]]", "", "uniqueItems", NULL),
    OK("{'uniqueItems':true}", "[1,'1',true,[1],{'1':1},0,false,null]"),
    OK("{'uniqueItems':false}", "[1,1]"),
    /* strings: lengths in code points, PCRE2 patterns, format never asserted */
    OK("{'maxLength':2}", "'\\u00e9\\u20ac'"),
    BAD("{'minLength':3}", "'\\u00e9\\u20ac'", "", "minLength",
        "at least 3 characters long, has 2"),
    OK("{'pattern':'^[a-z]+$'}", "'abc'"),
    BAD("{'pattern':'^[a-z]+$'}", "'aBc'", "", "pattern",
        "string does not match pattern '^[a-z]+$'"),
    OK("{'pattern':'b'}", "'abc'"),
    OK("{'pattern':'^.$'}", "'\\u00e9'"),
    OK("{'pattern':'^\\\\p{L}+$'}", "'h\\u00e9llo'"),
    OK("{'pattern':'^\\\\u0041$'}", "'A'"),
    BAD("{'pattern':'^a$'}", "'a\\n'", "", "pattern", NULL),
    OK("{'pattern':'^a'}", "1"),
    OK("{'format':'email'}", "'not an email'"),
    OK("{'format':'date-time'}", "'yesterday'"),
    /* numbers */
    BAD("{'minimum':1}", "0.5", "", "minimum", "value 0.5 is less than minimum 1"),
    OK("{'minimum':1}", "1.0"),
    BAD("{'exclusiveMaximum':3}", "3", "", "exclusiveMaximum", "value 3 must be less than 3"),
    BAD("{'exclusiveMinimum':1.5}", "1.5", "", "exclusiveMinimum", "greater than 1.5"),
    OK("{'exclusiveMinimum':1.5}", "2"),
    BAD("{'maximum':9007199254740992}", "9007199254740993", "", "maximum", NULL),
    BAD("{'maximum':9007199254740992.0}", "9007199254740993", "", "maximum", NULL),
    OK("{'maximum':9223372036854775807}", "9223372036854775807"),
    BAD("{'multipleOf':3}", "10", "", "multipleOf", "value 10 is not a multiple of 3"),
    OK("{'multipleOf':0.01}", "0.07"),
    OK("{'multipleOf':0.0001}", "0.0075"),
    BAD("{'multipleOf':0.01}", "0.075", "", "multipleOf", "value 0.075 is not a multiple of 0.01"),
    OK("{'multipleOf':1.5}", "4.5"),
    OK("{'type':'integer','multipleOf':0.5}", "1e308"),
    BAD("{'type':'integer','multipleOf':0.123456789}", "1e308", "", "multipleOf", NULL),
    OK("{'type':'integer','multipleOf':1e-8}", "12391239123"),
    /* applicators */
    BAD("{'allOf':[{'type':'object'},{'required':['a']}]}", "{}", "", "required", NULL),
    BAD("{'anyOf':[{'type':'string'},{'type':'integer'}]}", "null", "", "anyOf",
        "value does not match any of the 2 schemas in anyOf"),
    BAD("{'anyOf':[{'type':'string'},{'type':'object','required':['text']}]}", "{}", "", "anyOf",
        "closest is #1: property 'text' is required"),
    BAD("{'anyOf':[{'type':'string'},{'properties':{'a':{'type':'string'}}}]}", "{'a':1}", "",
        "anyOf", "fails at '/a': expected string, got integer"),
    BAD("{'oneOf':[{'type':'integer'},{'minimum':0}]}", "1", "", "oneOf",
        "matches more than one schema in oneOf (#0 and #1)"),
    OK("{'oneOf':[{'type':'integer'},{'minimum':0}]}", "1.5"),
    OK("{'oneOf':[{'type':'integer'},{'minimum':0}]}", "-1"),
    BAD("{'oneOf':[{'type':'integer'},{'minimum':0}]}", "-1.5", "", "oneOf",
        "value does not match any of the 2 schemas in oneOf"),
    BAD("{'not':{'type':'null'}}", "null", "", "not", "must not match"),
    OK("{'not':{'type':'null'}}", "0"),
    BAD("{'if':{'properties':{'kind':{'const':'a'}}},'then':{'required':['x']},"
        "'else':{'required':['y']}}", "{'kind':'a'}", "", "required", "property 'x'"),
    BAD("{'if':{'properties':{'kind':{'const':'a'}}},'then':{'required':['x']},"
        "'else':{'required':['y']}}", "{'kind':'b'}", "", "required", "property 'y'"),
    OK("{'if':{'properties':{'kind':{'const':'a'}}},'then':{'required':['x']},"
       "'else':{'required':['y']}}", "{'kind':'a','x':1}"),
    OK("{'then':false,'else':false}", "1"),
    OK("{'if':true,'else':false}", "1"),
    OK("true", "{'anything':[1]}"),
    BAD("false", "null", "", "false", NULL),
    OK("{}", "[[[[[[]]]]]]"),
    /* $ref, $defs, definitions, $anchor, $id */
    BAD("{'$defs':{'pos':{'type':'integer','minimum':1}},"
        "'properties':{'n':{'$ref':'#/$defs/pos'}}}", "{'n':0}", "/n", "minimum", NULL),
    BAD("{'definitions':{'s':{'type':'string'}},'items':{'$ref':'#/definitions/s'}}", "['a',1]",
        "/1", "type", NULL),
    BAD("{'$defs':{'s':{'type':'string'}},'$ref':'#/$defs/s','maxLength':2}", "'abc'", "",
        "maxLength", NULL), /* 2020-12: siblings of $ref apply */
    OK("{'$defs':{'a/b':{'type':'integer'},'c~d':{'type':'string'},'e%f':{'type':'null'}},"
       "'properties':{'x':{'$ref':'#/$defs/a~1b'},'y':{'$ref':'#/$defs/c~0d'},"
       "'z':{'$ref':'#/$defs/e%25f'}}}", "{'x':1,'y':'s','z':null}"),
    BAD("{'$defs':{'e%f':{'type':'null'}},'properties':{'z':{'$ref':'#/$defs/e%25f'}}}",
        "{'z':1}", "/z", "type", NULL),
    BAD("{'items':[{'type':'integer'},{'$ref':'#/items/0'}]}", "[1,'x']", "/1", "type", NULL),
    BAD("{'$defs':{'n':{'$anchor':'num','type':'number'}},'items':{'$ref':'#num'}}", "[1,'a']",
        "/1", "type", NULL),
    BAD("{'definitions':{'n':{'$id':'#num','type':'number'}},'items':{'$ref':'#num'}}", "[1,'a']",
        "/1", "type", NULL),
    OK("{'$ref':'#/$defs/t','$defs':{'t':true}}", "1"),
    BAD("{'$ref':'#/$defs/f','$defs':{'f':false}}", "1", "", "false", NULL),
    OK("{'type':'object','properties':{'child':{'$ref':'#'}},'additionalProperties':false}",
       "{'child':{'child':{}}}"),
    BAD("{'type':'object','properties':{'child':{'$ref':'#'}},'additionalProperties':false}",
        "{'child':{'child':{'x':1}}}", "/child/child", "additionalProperties", NULL),
    /* cycles that never consume the instance, and an exponential anyOf */
    DEEP("{'$ref':'#'}", "1"),
    DEEP("{'$defs':{'a':{'$ref':'#/$defs/b'},'b':{'$ref':'#/$defs/a'}},'$ref':'#/$defs/a'}", "1"),
    DEEP("{'$defs':{'a':{'anyOf':[{'$ref':'#/$defs/a'},{'$ref':'#/$defs/a'}]}},'$ref':'#/$defs/a'}",
         "1"),
    DEEP("{'$defs':{'a':{'not':{'$ref':'#/$defs/a'}}},'$ref':'#/$defs/a'}", "null"),
};

#define ID_SCHEMA                                                                                 \
    "{'$id':'http://x.test/dir/root.json',"                                                      \
    "'properties':{'a':{'$ref':'item.json'},'b':{'$ref':'item.json#/definitions/s'},"            \
    "'c':{'$ref':'#/definitions/t'},'d':{'$ref':'http://x.test/dir/root.json#/definitions/t'},"  \
    "'e':{'$ref':'../dir/./item.json#i'}},"                                                      \
    "'definitions':{'t':{'type':'boolean'},"                                                     \
    "'item':{'$id':'item.json','type':'object','$anchor':'i',"                                   \
    "'definitions':{'s':{'type':'string'}}}}}"

/* Relative $ref against nested "$id" bases, all inside the one document. */
static const struct vcase idcases[] = {
    OK(ID_SCHEMA, "{'a':{},'b':'s','c':true,'d':false,'e':{}}"),
    BAD(ID_SCHEMA, "{'a':1}", "/a", "type", NULL),
    BAD(ID_SCHEMA, "{'b':1}", "/b", "type", NULL),
    BAD(ID_SCHEMA, "{'c':1}", "/c", "type", NULL),
    BAD(ID_SCHEMA, "{'d':1}", "/d", "type", NULL),
    BAD(ID_SCHEMA, "{'e':1}", "/e", "type", NULL),
};

/* clang-format on */

static void run_vcases(const struct vcase *cases, size_t n)
{
    struct jschema_error e;
    struct jschema *s;
    json_t *sch, *inst;
    char *err = NULL;
    size_t i;
    int r;

    for (i = 0; i < n; i++) {
        const struct vcase *c = &cases[i];
        sch = J(c->schema);
        inst = J(c->instance);
        r = jschema_new(sch, &s, &err);
        if (r != 0)
            fail_msg("case %zu: schema %s rejected: %s", i, c->schema, err);
        r = jschema_validate(s, NULL, inst, &e);
        if (r != c->want)
            fail_msg("case %zu: %s with %s: got %d (%s: %s at '%s'), want %d", i, c->schema,
                     c->instance, r, e.keyword, e.message, e.path, c->want);
        if (c->want != 0) {
            if (c->path != NULL && strcmp(e.path, c->path) != 0)
                fail_msg("case %zu: %s: path '%s', want '%s'", i, c->schema, e.path, c->path);
            if (c->keyword != NULL && strcmp(e.keyword, c->keyword) != 0)
                fail_msg("case %zu: %s: keyword '%s', want '%s' (%s)", i, c->schema, e.keyword,
                         c->keyword, e.message);
            if (c->msg != NULL && strstr(e.message, c->msg) == NULL)
                fail_msg("case %zu: %s: message '%s' lacks '%s'", i, c->schema, e.message, c->msg);
        }
        /* The same answer without an error report. */
        assert_int_equal(jschema_validate(s, NULL, inst, NULL), c->want);
        jschema_free(s);
        json_decref(sch);
        json_decref(inst);
    }
}

static void test_keywords(void **state)
{
    (void)state;
    run_vcases(vcases, sizeof vcases / sizeof vcases[0]);
}

static void test_id_bases(void **state)
{
    (void)state;
    run_vcases(idcases, sizeof idcases / sizeof idcases[0]);
}

/* Schemas jschema_new must reject, with a substring of the reason. */
/* clang-format off */
static const struct {
    const char *schema, *why;
} bad_schemas[] = {
    {"{'pattern':'['}", "invalid regular expression '['"},
    {"{'patternProperties':{'(':{}}}", "invalid regular expression"},
    {"{'required':5}", "\"required\" must be an array of strings"},
    {"{'required':[1]}", "\"required\" must be an array of strings"},
    {"{'minimum':'5'}", "\"minimum\" must be a number"},
    {"{'type':'int'}", "\"type\" must be one of"},
    {"{'type':['string',1]}", "\"type\" must be one of"},
    {"{'properties':[]}", "\"properties\" must be an object"},
    {"{'multipleOf':0}", "greater than 0"},
    {"{'minLength':-1}", "non-negative integer"},
    {"{'maxItems':1.5}", "non-negative integer"},
    {"{'uniqueItems':1}", "true or false"},
    {"{'anyOf':[]}", "non-empty array of schemas"},
    {"{'enum':5}", "\"enum\" must be an array"},
    {"{'dependentRequired':{'a':[1]}}", "array of strings"},
    {"{'items':[5]}", "'#/items/0': a schema must be an object or a boolean"},
    {"{'properties':{'a':{'minimum':'x'}}}", "'#/properties/a/minimum'"},
    {"5", "a schema must be an object or a boolean"},
    {"{'$ref':5}", "\"$ref\" must be a string"},
    {"{'$ref':'http://example.com/schema.json'}", "remote references are never fetched"},
    {"{'$ref':'other.json#/a'}", "remote references are never fetched"},
    {"{'$id':'http://x.test/a.json','$ref':'b.json'}", "remote references are never fetched"},
    {"{'$ref':'#/$defs/missing'}", "the JSON pointer names nothing"},
    {"{'$ref':'#nope'}", "no $anchor"},
    {"{'$anchor':'1bad'}", "anchor '1bad'"},
    {"{'$defs':{'a':{'$id':'http://x/a'},'b':{'$id':'http://x/a'}}}", "two different schemas"},
};

/* clang-format on */

static void test_bad_schemas(void **state)
{
    struct jschema *s;
    char *err;
    size_t i;
    json_t *j;

    (void)state;
    for (i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
        j = J(bad_schemas[i].schema);
        err = NULL;
        s = (struct jschema *)1;
        assert_int_equal(jschema_new(j, &s, &err), ERR_INVALID);
        assert_null(s);
        assert_non_null(err);
        if (strstr(err, bad_schemas[i].why) == NULL)
            fail_msg("%s: error '%s' lacks '%s'", bad_schemas[i].schema, err, bad_schemas[i].why);
        free(err);
        json_decref(j);
    }
    assert_int_equal(jschema_new(NULL, &s, NULL), ERR_INVALID);
    jschema_free(NULL);
}

/* n levels of [[...]] or of {"not": {"not": ...}}. */
static json_t *nest(int n, int schema)
{
    json_t *j = schema ? json_object() : json_array(), *outer;

    while (n-- > 0) {
        outer = schema ? json_object() : json_array();
        if (schema)
            json_object_set_new(outer, "not", j);
        else
            json_array_append_new(outer, j);
        j = outer;
    }
    return j;
}

static void test_depth(void **state)
{
    struct jschema_error e;
    struct jschema *s;
    json_t *sch = J("{'type':'array','items':{'$ref':'#'}}"), *deep = nest(100, 0);
    json_t *shallow = nest(60, 0), *any = J("{}"), *tall = nest(300, 1), *bottom;
    char *err = NULL;

    (void)state;
    assert_int_equal(jschema_new(sch, &s, NULL), 0);
    assert_int_equal(jschema_validate(s, NULL, shallow, &e), 0);
    assert_int_equal(jschema_validate(s, NULL, deep, &e), ERR_DEPTH);
    assert_string_equal(e.keyword, "depth");
    assert_non_null(strstr(e.message, "64 levels"));
    jschema_free(s);
    /* A schema that does not descend does not care how deep the instance is. */
    assert_int_equal(jschema_new(any, &s, NULL), 0);
    assert_int_equal(jschema_validate(s, NULL, deep, &e), 0);
    jschema_free(s);
    /* Finite but exponential (two ways down at every level, failing at the bottom): the step
     * budget ends it. */
    json_decref(sch);
    sch = J("{'type':'array','items':{'anyOf':[{'$ref':'#'},{'$ref':'#'},{'type':'string'}]}}");
    for (bottom = shallow; json_array_size(bottom) > 0; bottom = json_array_get(bottom, 0))
        ;
    json_array_append_new(bottom, json_integer(1)); /* [[[...[1]...]]] */
    assert_int_equal(jschema_new(sch, &s, NULL), 0);
    assert_int_equal(jschema_validate(s, NULL, shallow, &e), ERR_DEPTH);
    assert_non_null(strstr(e.message, "steps"));
    jschema_free(s);
    /* Schemas nested past the compile cap are rejected, not recursed into. */
    assert_int_equal(jschema_new(tall, &s, &err), ERR_INVALID);
    assert_non_null(strstr(err, "nested more than"));
    free(err);
    json_decref(sch);
    json_decref(deep);
    json_decref(shallow);
    json_decref(any);
    json_decref(tall);
}

static void test_validate_ref(void **state)
{
    struct jschema_error e;
    struct jschema *s;
    json_t *sch = J("{'$defs':{'A':{'type':'string'},'B':{'$anchor':'bee','type':'null'}}}");
    json_t *one = J("1");

    (void)state;
    assert_int_equal(jschema_new(sch, &s, NULL), 0);
    assert_int_equal(jschema_validate(s, "#/$defs/A", one, &e), ERR_INVALID);
    assert_string_equal(e.keyword, "type");
    assert_int_equal(jschema_validate(s, "#bee", one, &e), ERR_INVALID);
    assert_int_equal(jschema_validate(s, "#/$defs/Nope", one, &e), ERR_NOTFOUND);
    assert_non_null(strstr(e.message, "#/$defs/Nope"));
    assert_int_equal(jschema_validate(s, "#/$defs", one, &e), ERR_NOTFOUND);
    assert_int_equal(jschema_validate(s, "http://elsewhere.test/x#", one, &e), ERR_NOTFOUND);
    assert_int_equal(jschema_validate(s, "#", one, &e), 0);
    assert_int_equal(jschema_validate(s, "", one, NULL), 0);
    assert_int_equal(jschema_validate(s, NULL, NULL, &e), ERR_USAGE);
    jschema_free(s);
    json_decref(sch);
    json_decref(one);
}

/* ---- the official MCP schemas ---- */

static json_t *load_mcp(const char *name)
{
    const char *dir = getenv("MCPGATE_SCHEMA_DIR"), *src = getenv("MCPGATE_SOURCE_DIR");
    char path[1024];
    json_error_t jerr;
    json_t *j;

    if (dir != NULL && *dir != '\0')
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s/../shared/mcp-schema/%s", src ? src : ".", name);
    if ((j = json_load_file(path, 0, &jerr)) == NULL)
        fail_msg("cannot load %s: %s", path, jerr.text);
    return j;
}

struct mcase {
    const char *ref, *instance;
    int want;
    const char *path, *keyword, *msg; /* msg: a substring of the message, or NULL */
};

static void run_mcp(const char *file, const struct mcase *cases, size_t n)
{
    json_t *doc = load_mcp(file), *defs, *inst, *v;
    struct jschema_error e;
    struct jschema *s;
    const char *name;
    char *err = NULL, ref[256];
    size_t i;
    int r;

    if (jschema_new(doc, &s, &err) != 0)
        fail_msg("%s: %s", file, err);
    for (i = 0; i < n; i++) {
        inst = J(cases[i].instance);
        r = jschema_validate(s, cases[i].ref, inst, &e);
        if (r != cases[i].want)
            fail_msg("%s %s %s: got %d (%s at '%s': %s), want %d", file, cases[i].ref,
                     cases[i].instance, r, e.keyword, e.path, e.message, cases[i].want);
        if (cases[i].path != NULL)
            assert_string_equal(e.path, cases[i].path);
        if (cases[i].keyword != NULL)
            assert_string_equal(e.keyword, cases[i].keyword);
        if (cases[i].msg != NULL && strstr(e.message, cases[i].msg) == NULL)
            fail_msg("%s %s: message '%s' lacks '%s'", file, cases[i].ref, e.message, cases[i].msg);
        json_decref(inst);
    }
    /* Every definition can be named and applied. */
    defs = json_object_get(doc, "$defs");
    assert_true(json_object_size(defs) > 50);
    inst = J("{'jsonrpc':'2.0','id':1,'method':'x','params':{},'result':{}}");
    json_object_foreach (defs, name, v) {
        snprintf(ref, sizeof ref, "#/$defs/%s", name);
        r = jschema_validate(s, ref, inst, &e);
        if (r != 0 && r != ERR_INVALID)
            fail_msg("%s %s: %d", file, ref, r);
    }
    json_decref(inst);
    jschema_free(s);
    json_decref(doc);
}

/* clang-format off */
#define M_OK(ref, inst) {ref, inst, 0, NULL, NULL, NULL}
#define M_BAD(ref, inst, path, kw, msg) {ref, inst, ERR_INVALID, path, kw, msg}
#define M_NONE(ref) {ref, "{}", ERR_NOTFOUND, NULL, "$ref", NULL}

static void test_mcp_2025_11_25(void **state)
{
    static const struct mcase cases[] = {
        M_OK("#/$defs/CallToolResult",
             "{'content':[{'type':'text','text':'hi'},{'type':'image','data':'AA==',"
             "'mimeType':'image/png'}],'isError':false,'structuredContent':{'n':1}}"),
        M_BAD("#/$defs/CallToolResult", "{'content':'hi'}", "/content", "type",
              "expected array, got string"),
        M_BAD("#/$defs/CallToolResult", "{'isError':true}", "", "required",
              "property 'content' is required"),
        M_BAD("#/$defs/CallToolResult", "{'content':[{'type':'text'}]}", "/content/0", "anyOf",
              "any of the 5 schemas in anyOf (closest is #0: property 'text' is required)"),
        M_BAD("#/$defs/CallToolResult", "{'content':[{'type':'image','data':'AA=='}]}",
              "/content/0", "anyOf", "(closest is #1: property 'mimeType' is required)"),
        M_OK("#/$defs/JSONRPCRequest", "{'jsonrpc':'2.0','id':1,'method':'tools/list'}"),
        M_OK("#/$defs/JSONRPCRequest", "{'jsonrpc':'2.0','id':'a','method':'x','params':{'a':1}}"),
        M_BAD("#/$defs/JSONRPCRequest", "{'jsonrpc':'1.0','id':1,'method':'x'}", "/jsonrpc",
              "const", "value must be \"2.0\""),
        M_BAD("#/$defs/JSONRPCRequest", "{'jsonrpc':'2.0','id':true,'method':'x'}", "/id", "type",
              "expected string or integer, got boolean"),
        M_OK("#/$defs/InitializeResult",
             "{'protocolVersion':'2025-11-25','capabilities':{'tools':{'listChanged':true}},"
             "'serverInfo':{'name':'mcpgate','version':'0.1.0'}}"),
        M_BAD("#/$defs/InitializeResult", "{'protocolVersion':'2025-11-25','capabilities':{}}", "",
              "required", "property 'serverInfo' is required"),
        M_BAD("#/$defs/InitializeResult",
              "{'protocolVersion':'2025-11-25','capabilities':{},'serverInfo':{'name':'x'}}",
              "/serverInfo", "required", "property 'version' is required"),
        M_NONE("#/$defs/NoSuchThing"),
    };

    (void)state;
    run_mcp("2025-11-25.json", cases, sizeof cases / sizeof cases[0]);
}

static void test_mcp_2026_07_28(void **state)
{
    static const struct mcase cases[] = {
        M_OK("#/$defs/CallToolResult",
             "{'content':[{'type':'text','text':'hi'}],'resultType':'complete'}"),
        M_BAD("#/$defs/CallToolResult", "{'content':{},'resultType':'complete'}", "/content",
              "type", "expected array, got object"),
        M_BAD("#/$defs/CallToolResult", "{'content':[]}", "", "required",
              "property 'resultType' is required"),
        M_OK("#/$defs/JSONRPCRequest", "{'jsonrpc':'2.0','id':7,'method':'server/discover'}"),
        M_BAD("#/$defs/JSONRPCRequest", "{'jsonrpc':'2.0','id':1.5,'method':'x'}", "/id", "type",
              NULL),
        /* This revision replaced InitializeResult with DiscoverResult. */
        M_NONE("#/$defs/InitializeResult"),
        M_OK("#/$defs/DiscoverResult",
             "{'cacheScope':'public','capabilities':{},'resultType':'complete',"
             "'supportedVersions':['2026-07-28'],'ttlMs':0}"),
        M_BAD("#/$defs/DiscoverResult",
              "{'cacheScope':'shared','capabilities':{},'resultType':'complete',"
              "'supportedVersions':[],'ttlMs':0}", "/cacheScope", "enum",
              "value must be one of [\"private\",\"public\"]"),
        M_BAD("#/$defs/DiscoverResult",
              "{'cacheScope':'public','capabilities':{},'resultType':'complete',"
              "'supportedVersions':[],'ttlMs':-1}", "/ttlMs", "minimum",
              "value -1 is less than minimum 0"),
    };

    (void)state;
    run_mcp("2026-07-28.json", cases, sizeof cases / sizeof cases[0]);
}

/* clang-format on */

/* Validation only reads the compiled schema: run it from several threads at once. */
struct worker {
    const struct jschema *s;
    json_t *good, *bad;
    int errors;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct jschema_error e;
    int i;

    for (i = 0; i < 200; i++) {
        if (jschema_validate(w->s, "#/$defs/CallToolResult", w->good, &e) != 0)
            w->errors++;
        if (jschema_validate(w->s, "#/$defs/CallToolResult", w->bad, &e) != ERR_INVALID)
            w->errors++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    json_t *doc = load_mcp("2025-11-25.json");
    struct worker w[4];
    pthread_t t[4];
    struct jschema *s;
    int i;

    (void)state;
    assert_int_equal(jschema_new(doc, &s, NULL), 0);
    for (i = 0; i < 4; i++) {
        w[i].s = s;
        w[i].good = J("{'content':[{'type':'text','text':'hi'}],'_meta':{'a':1}}");
        w[i].bad = J("{'content':[{'type':'text','text':3}]}");
        w[i].errors = 0;
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
        json_decref(w[i].good);
        json_decref(w[i].bad);
    }
    jschema_free(s);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords),       cmocka_unit_test(test_id_bases),
        cmocka_unit_test(test_bad_schemas),    cmocka_unit_test(test_depth),
        cmocka_unit_test(test_validate_ref),   cmocka_unit_test(test_mcp_2025_11_25),
        cmocka_unit_test(test_mcp_2026_07_28), cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
