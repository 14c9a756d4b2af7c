/* The engine driven through a session with a capturing transport: framing errors, version
 * negotiation, the lifecycle, pagination, cancellation, server-to-client requests and the
 * integrity of MRTR requestState. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"
#include "tools/tools.h"

struct capture {
    pthread_mutex_t mu;
    json_t *msgs; /* every message sent, parsed */
    int finals;
};

static void capture_send(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    struct capture *c = arg;
    assert_null(memchr(msg, '\n', len)); /* one line per message */
    json_t *j = json_loadb(msg, len, 0, NULL);
    assert_non_null(j);
    pthread_mutex_lock(&c->mu);
    json_array_append_new(c->msgs, j);
    c->finals += final;
    pthread_mutex_unlock(&c->mu);
}

struct fixture {
    struct mcp_server *srv;
    struct mcp_session *s;
    struct capture cap;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->srv = mcp_server_new("test", "9.9");
    const char *bad;
    assert_int_equal(tools_register(f->srv, "demo", &bad), 0);
    pthread_mutex_init(&f->cap.mu, NULL);
    f->cap.msgs = json_array();
    struct mcp_session_io io = {.send = capture_send, .arg = &f->cap};
    f->s = mcp_session_new(f->srv, &io);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mcp_session_close(f->s);
    mcp_server_free(f->srv);
    json_decref(f->cap.msgs);
    free(f);
    return 0;
}

static void feed(struct fixture *f, const char *line)
{
    mcp_session_feed(f->s, line, strlen(line), NULL);
}

static void feedf(struct fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void feedf(struct fixture *f, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    feed(f, buf);
}

/* Waits (up to 5 s) for the message answering id (a JSON integer), returns it (+1 ref). */
static json_t *answer(struct fixture *f, json_int_t id)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&f->cap.mu);
        size_t k;
        json_t *m;
        json_array_foreach(f->cap.msgs, k, m) {
            json_t *mid = json_object_get(m, "id");
            if (json_is_integer(mid) && json_integer_value(mid) == id &&
                json_object_get(m, "method") == NULL) {
                json_incref(m);
                pthread_mutex_unlock(&f->cap.mu);
                return m;
            }
        }
        pthread_mutex_unlock(&f->cap.mu);
        usleep(1000);
    }
    fail_msg("no answer to request %lld", (long long)id);
    return NULL;
}

/* The first message (not an answer) whose method is method, or NULL after 5 s. */
static json_t *sent_method(struct fixture *f, const char *method)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&f->cap.mu);
        size_t k;
        json_t *m;
        json_array_foreach(f->cap.msgs, k, m) {
            const char *mm = json_string_value(json_object_get(m, "method"));
            if (mm != NULL && strcmp(mm, method) == 0) {
                json_incref(m);
                pthread_mutex_unlock(&f->cap.mu);
                return m;
            }
        }
        pthread_mutex_unlock(&f->cap.mu);
        usleep(1000);
    }
    return NULL;
}

static int error_code(json_t *m)
{
    return (int)json_integer_value(json_object_get(json_object_get(m, "error"), "code"));
}

static const char *error_message(json_t *m)
{
    return json_string_value(json_object_get(json_object_get(m, "error"), "message"));
}

static json_t *result(json_t *m)
{
    json_t *r = json_object_get(m, "result");
    if (r == NULL)
        fail_msg("expected a result, got %s", error_message(m));
    return r;
}

static void initialize(struct fixture *f, const char *version, const char *caps)
{
    feedf(f,
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
          "\"%s\",\"capabilities\":%s,\"clientInfo\":{\"name\":\"unit\",\"version\":\"1\"}}}",
          version, caps);
    json_t *m = answer(f, 1);
    result(m);
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

#define MODERN_META(caps)                                                                          \
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                      \
    "\"io.modelcontextprotocol/clientCapabilities\":" caps "}"

/* ---- framing ---- */

static void test_framing_errors(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *line;
        int code;
        const char *msg_part;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":", JSONRPC_PARSE_ERROR, "Parse error"},
        {"not json", JSONRPC_PARSE_ERROR, "Parse error"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing", JSONRPC_PARSE_ERROR,
         "Parse error"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST,
         "\"jsonrpc\" must be \"2.0\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST,
         "null is not allowed"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST,
         "string or an integer"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1]}",
         JSONRPC_INVALID_REQUEST, "\"params\" must be an object"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", JSONRPC_INVALID_REQUEST,
         "\"method\" must be a non-empty string"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", JSONRPC_INVALID_REQUEST, "needs \"method\""},
        {"42", JSONRPC_INVALID_REQUEST, "must be a JSON object"},
        {"[]", JSONRPC_INVALID_REQUEST, "batches"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xc3\x28\"}}",
         JSONRPC_PARSE_ERROR, "invalid UTF-8"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xed\xa0\x80\"}}",
         JSONRPC_PARSE_ERROR, "invalid UTF-8"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xc0\xaf\"}}",
         JSONRPC_PARSE_ERROR, "invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        pthread_mutex_lock(&f->cap.mu);
        json_array_clear(f->cap.msgs);
        pthread_mutex_unlock(&f->cap.mu);
        feed(f, cases[i].line);
        assert_int_equal(json_array_size(f->cap.msgs), 1);
        json_t *m = json_array_get(f->cap.msgs, 0);
        if (error_code(m) != cases[i].code || strstr(error_message(m), cases[i].msg_part) == NULL)
            fail_msg("case %zu (%s): got %d '%s'", i, cases[i].line, error_code(m),
                     error_message(m));
    }
}

static void test_limits(void **state)
{
    struct fixture *f = *state;
    /* Nesting beyond the cap is refused before parsing. */
    char deep[300];
    memset(deep, '[', 100);
    deep[100] = '\0';
    feed(f, deep);
    json_t *m = json_array_get(f->cap.msgs, 0);
    assert_int_equal(error_code(m), JSONRPC_INVALID_REQUEST);
    assert_non_null(strstr(error_message(m), "nests deeper than 64"));
    /* Size beyond the cap. */
    mcp_server_set_max_message(f->srv, 64);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{\"pad\":"
            "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}");
    m = json_array_get(f->cap.msgs, 1);
    assert_int_equal(error_code(m), JSONRPC_INVALID_REQUEST);
    assert_non_null(strstr(error_message(m), "exceeds the limit of 64 bytes"));
}

/* ---- lifecycle and negotiation ---- */

static void test_negotiation(void **state)
{
    static const struct {
        const char *asked, *got;
    } cases[] = {
        {"2024-11-05", "2024-11-05"}, {"2025-03-26", "2025-03-26"},
        {"2025-06-18", "2025-06-18"}, {"2025-11-25", "2025-11-25"},
        {"2030-01-01", "2025-11-25"}, /* unknown: our latest legacy revision */
        {"2026-07-28", "2025-11-25"}, /* no initialize in 2026-07-28: offer the legacy latest */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        feedf(f,
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
              "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"u\","
              "\"version\":\"1\"}}}",
              cases[i].asked);
        json_t *m = answer(f, 1);
        json_t *r = result(m);
        assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")),
                            cases[i].got);
        assert_non_null(json_object_get(json_object_get(r, "capabilities"), "tools"));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")), "test");
        json_decref(m);
        teardown(&st);
    }
}

static void test_lifecycle(void **state)
{
    struct fixture *f = *state;
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\"}");
    json_t *m = answer(f, 10);
    assert_int_equal(error_code(m), JSONRPC_INVALID_REQUEST);
    assert_non_null(strstr(error_message(m), "before initialization"));
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"ping\"}"); /* allowed before init */
    m = answer(f, 11);
    assert_int_equal(json_object_size(result(m)), 0);
    json_decref(m);
    initialize(f, "2025-11-25", "{}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{}}}");
    m = answer(f, 12);
    assert_int_equal(error_code(m), JSONRPC_INVALID_REQUEST);
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"no/such\"}");
    m = answer(f, 13);
    assert_int_equal(error_code(m), JSONRPC_METHOD_NOT_FOUND);
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"str-id\",\"method\":\"ping\"}");
    for (int i = 0; i < 100 && json_array_size(f->cap.msgs) < 6; i++)
        usleep(1000);
    m = json_array_get(f->cap.msgs, json_array_size(f->cap.msgs) - 1);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "str-id");
    /* An unknown notification gets no answer. */
    size_t before = json_array_size(f->cap.msgs);
    feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}");
    assert_int_equal(json_array_size(f->cap.msgs), before);
}

static void test_batches(void **state)
{
    struct fixture *f = *state;
    initialize(f, "2025-03-26", "{}");
    size_t before = json_array_size(f->cap.msgs);
    /* Two requests, a notification and a malformed element: one array with three answers. */
    feed(f, "[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"},"
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
            "{\"jsonrpc\":\"1.0\",\"id\":4,\"method\":\"ping\"},"
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"echo\",\"arguments\":{\"text\":\"b\"}}}]");
    json_t *arr = NULL;
    for (int i = 0; i < 5000 && arr == NULL; i++) {
        pthread_mutex_lock(&f->cap.mu);
        for (size_t k = before; k < json_array_size(f->cap.msgs); k++) {
            if (json_is_array(json_array_get(f->cap.msgs, k)))
                arr = json_incref(json_array_get(f->cap.msgs, k));
        }
        pthread_mutex_unlock(&f->cap.mu);
        if (arr == NULL)
            usleep(1000);
    }
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 3);
    int seen = 0;
    size_t k;
    json_t *m;
    json_array_foreach(arr, k, m) {
        json_int_t id = json_integer_value(json_object_get(m, "id"));
        if (id == 2 || id == 3)
            seen += json_object_get(m, "result") != NULL;
        if (id == 4)
            seen += error_code(m) == JSONRPC_INVALID_REQUEST;
    }
    assert_int_equal(seen, 3);
    json_decref(arr);
    /* Nothing else was sent: no stray per-message answers. */
    assert_int_equal(json_array_size(f->cap.msgs), before + 1);
}

/* ---- pagination ---- */

static void test_pagination(void **state)
{
    struct fixture *f = *state;
    mcp_server_set_page_size(f->srv, 2);
    initialize(f, "2025-11-25", "{}");
    json_t *names = json_array();
    char cursor[128] = "";
    json_int_t id = 100;
    for (int page = 0; page < 10; page++, id++) {
        if (cursor[0])
            feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/list\",\"params\":{"
                     "\"cursor\":\"%s\"}}", (long long)id, cursor);
        else
            feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/list\"}", (long long)id);
        json_t *m = answer(f, id);
        json_t *r = result(m);
        assert_true(json_array_size(json_object_get(r, "tools")) <= 2);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(r, "tools"), i, t)
            json_array_append(names, json_object_get(t, "name"));
        const char *next = json_string_value(json_object_get(r, "nextCursor"));
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        json_decref(m);
        if (next == NULL) {
            id++;
            break;
        }
    }
    assert_int_equal(json_array_size(names), 6); /* every demo tool, once */
    assert_string_equal(json_string_value(json_array_get(names, 0)), "echo");
    assert_string_equal(json_string_value(json_array_get(names, 5)), "greet_user");
    json_decref(names);

    static const char *const bad[] = {"not-base64!", "cjow" /* "r:0": another list's */,
                                      "dDo5OQ" /* "t:99": past the end */, ""};
    for (size_t i = 0; i < 4; i++, id++) {
        feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/list\",\"params\":{"
                 "\"cursor\":\"%s\"}}", (long long)id, bad[i]);
        json_t *m = answer(f, id);
        if (error_code(m) != JSONRPC_INVALID_PARAMS)
            fail_msg("cursor '%s' was accepted", bad[i]);
        json_decref(m);
    }
}

/* ---- tools ---- */

static void test_tool_errors(void **state)
{
    struct fixture *f = *state;
    initialize(f, "2025-11-25", "{}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
    json_t *m = answer(f, 2);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    assert_non_null(strstr(error_message(m), "Unknown tool: nope"));
    json_decref(m);
    /* Schema violations are tool errors that name the path and the rule. */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"add\","
            "\"arguments\":{\"a\":1,\"b\":\"two\"}}}");
    m = answer(f, 3);
    json_t *r = result(m);
    assert_true(json_is_true(json_object_get(r, "isError")));
    const char *text =
        json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
    assert_non_null(strstr(text, "/b"));
    assert_non_null(strstr(text, "type"));
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
            "\"arguments\":[1]}}");
    m = answer(f, 4);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    json_decref(m);
}

static void test_cancellation(void **state)
{
    struct fixture *f = *state;
    initialize(f, "2025-11-25", "{}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"countdown\",\"arguments\":{\"steps\":100,\"intervalMs\":50},\"_meta\":{"
            "\"progressToken\":\"pt\"}}}");
    json_t *p = sent_method(f, "notifications/progress");
    assert_non_null(p);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "params"), "progressToken")), "pt");
    json_decref(p);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
            "\"requestId\":5,\"reason\":\"test\"}}");
    /* The handler stops at once; the session keeps working; no answer to 5 is sent. */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
            "\"arguments\":{\"text\":\"after\"}}}");
    json_t *m = answer(f, 6);
    result(m);
    json_decref(m);
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&f->s->mu);
        bool idle = f->s->running_jobs == 0;
        pthread_mutex_unlock(&f->s->mu);
        if (idle)
            break;
        usleep(1000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2); /* far less than the 5 s it would have run */
    size_t k;
    json_t *x;
    json_array_foreach(f->cap.msgs, k, x) {
        json_t *id = json_object_get(x, "id");
        if (json_is_integer(id) && json_integer_value(id) == 5)
            fail_msg("a cancelled request was answered");
    }
}

static void test_legacy_elicitation(void **state)
{
    struct fixture *f = *state;
    initialize(f, "2025-11-25", "{\"elicitation\":{}}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"greet_user\"}}");
    json_t *req = sent_method(f, "elicitation/create");
    assert_non_null(req);
    const char *rid = json_string_value(json_object_get(req, "id"));
    assert_non_null(rid);
    feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"result\":{\"action\":\"accept\",\"content\":"
             "{\"name\":\"Ada\"}}}", rid);
    json_decref(req);
    json_t *m = answer(f, 8);
    json_t *c = json_array_get(json_object_get(result(m), "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Hello, Ada!");
    json_decref(m);
}

/* ---- the modern era and MRTR ---- */

static void test_modern_basics(void **state)
{
    struct fixture *f = *state;
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" MODERN_META(
                "{}") "}}");
    json_t *m = answer(f, 1);
    json_t *r = result(m);
    assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
    assert_true(json_is_integer(json_object_get(r, "ttlMs")));
    assert_non_null(json_object_get(json_object_get(r, "_meta"),
                                    "io.modelcontextprotocol/serverInfo"));
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
            "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}");
    m = answer(f, 2);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    assert_non_null(strstr(error_message(m), "clientCapabilities"));
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
            "\"io.modelcontextprotocol/protocolVersion\":\"2027-01-01\","
            "\"io.modelcontextprotocol/clientCapabilities\":{}}}}");
    m = answer(f, 3);
    assert_int_equal(error_code(m), MCP_UNSUPPORTED_VERSION);
    json_t *data = json_object_get(json_object_get(m, "error"), "data");
    assert_string_equal(json_string_value(json_object_get(data, "requested")), "2027-01-01");
    assert_string_equal(json_string_value(json_array_get(json_object_get(data, "supported"), 0)),
                        "2026-07-28");
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":{"
            "\"level\":\"info\"," MODERN_META("{}") "}}");
    m = answer(f, 4);
    assert_int_equal(error_code(m), JSONRPC_METHOD_NOT_FOUND);
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":"
            "\"demo://none\"," MODERN_META("{}") "}}");
    m = answer(f, 5);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS); /* -32002 was legacy */
    json_decref(m);
}

static char *mrtr_first_round(struct fixture *f, json_int_t id)
{
    feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"greet_user\",\"arguments\":{}," MODERN_META("{\"elicitation\":{}}") "}}",
          (long long)id);
    json_t *m = answer(f, id);
    json_t *r = result(m);
    assert_string_equal(json_string_value(json_object_get(r, "resultType")), "input_required");
    json_t *q = json_object_get(json_object_get(r, "inputRequests"), "name");
    assert_string_equal(json_string_value(json_object_get(q, "method")), "elicitation/create");
    char *st = strdup(json_string_value(json_object_get(r, "requestState")));
    json_decref(m);
    return st;
}

static json_t *mrtr_retry(struct fixture *f, json_int_t id, const char *tool, const char *args,
                          const char *st)
{
    feedf(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":%s,\"requestState\":\"%s\",\"inputResponses\":{\"name\":{"
             "\"action\":\"accept\",\"content\":{\"name\":\"Lin\"}}}," MODERN_META(
                 "{\"elicitation\":{}}") "}}",
          (long long)id, tool, args, st);
    return answer(f, id);
}

static void test_mrtr_round_trip(void **state)
{
    struct fixture *f = *state;
    char *st = mrtr_first_round(f, 1);
    json_t *m = mrtr_retry(f, 2, "greet_user", "{}", st);
    json_t *c = json_array_get(json_object_get(result(m), "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Hello, Lin!");
    json_decref(m);
    free(st);
}

static void test_mrtr_integrity(void **state)
{
    struct fixture *f = *state;
    char *st = mrtr_first_round(f, 1);
    size_t n = strlen(st);
    const char *dot = strrchr(st, '.');
    assert_non_null(dot);
    size_t dotpos = (size_t)(dot - st);
    json_int_t id = 10;

    /* Flip one character in the payload, in the MAC, truncate, drop the MAC. */
    size_t positions[] = {0, dotpos / 2, dotpos - 1, dotpos + 1, n - 2};
    for (size_t i = 0; i < sizeof(positions) / sizeof(*positions); i++, id++) {
        char *t = strdup(st);
        t[positions[i]] = t[positions[i]] == 'A' ? 'B' : 'A';
        json_t *m = mrtr_retry(f, id, "greet_user", "{}", t);
        if (error_code(m) != JSONRPC_INVALID_PARAMS)
            fail_msg("tampered state (position %zu) was accepted", positions[i]);
        json_decref(m);
        free(t);
    }
    char *trunc = strndup(st, dotpos);
    json_t *m = mrtr_retry(f, id++, "greet_user", "{}", trunc);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    json_decref(m);
    free(trunc);

    /* A genuine state replayed with other arguments or for another tool is refused. */
    m = mrtr_retry(f, id++, "greet_user", "{\"x\":1}", st);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    json_decref(m);
    m = mrtr_retry(f, id++, "echo", "{\"text\":\"a\"}", st);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    assert_non_null(strstr(error_message(m), "different request"));
    json_decref(m);

    /* A state sealed by another server instance (another key) is refused. */
    void *other;
    setup(&other);
    struct fixture *g = other;
    m = mrtr_retry(g, 1, "greet_user", "{}", st);
    assert_int_equal(error_code(m), JSONRPC_INVALID_PARAMS);
    assert_non_null(strstr(error_message(m), "integrity"));
    json_decref(m);
    teardown(&other);

    /* The same key (several instances configured alike) accepts it. */
    unsigned char key[32] = {1, 2, 3};
    setup(&other);
    g = other;
    assert_int_equal(mcp_server_set_state_key(g->srv, key, sizeof(key)), 0);
    assert_int_equal(mcp_server_set_state_key(f->srv, key, sizeof(key)), 0);
    free(st);
    st = mrtr_first_round(f, id++);
    m = mrtr_retry(g, 2, "greet_user", "{}", st);
    result(m);
    json_decref(m);
    teardown(&other);
    free(st);
}

/* ---- answering later (MCPGATE_EDEFERRED, mcp_ctx_finish, mcp_ctx_on_cancel, mcp_ctx_run) ---- */

struct later {
    atomic_int cancels;   /* on_cancel calls */
    atomic_int runs;      /* handler calls */
    atomic_int pool_runs; /* of which on the pool */
};

static void *finish_soon(void *arg)
{
    struct mcp_ctx *ctx = arg;
    usleep(20000);
    mcp_ctx_finish(ctx, 0, mcp_result_text("done later"));
    return NULL;
}

/* Defers; another thread answers 20 ms later. */
static int tool_later(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)args, (void)result;
    struct later *l = udata;
    atomic_fetch_add(&l->runs, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, finish_soon, ctx), 0);
    pthread_detach(t);
    return MCPGATE_EDEFERRED;
}

/* Defers and answers before it has even returned. */
static int tool_at_once(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)result, (void)udata;
    mcp_ctx_finish(ctx, 0, mcp_result_text(json_string_value(json_object_get(args, "text"))));
    return MCPGATE_EDEFERRED;
}

static void on_cancel_finish(void *arg)
{
    void **pair = arg;
    struct later *l = pair[1];
    atomic_fetch_add(&l->cancels, 1);
    mcp_ctx_finish(pair[0], MCPGATE_ECANCELLED, NULL);
    free(pair);
}

/* Defers and never answers: only cancellation ends it. */
static int tool_forever(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)args, (void)result;
    void **pair = malloc(2 * sizeof *pair);
    pair[0] = ctx;
    pair[1] = udata;
    if (mcp_ctx_on_cancel(ctx, on_cancel_finish, pair) != 0) {
        free(pair);
        return MCPGATE_ECANCELLED;
    }
    return MCPGATE_EDEFERRED;
}

/* Inline, it asks for the pool; on the pool, it answers where it ran. */
static int tool_picky(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)args;
    struct later *l = udata;
    atomic_fetch_add(&l->runs, 1);
    if (!mcp_ctx_on_pool(ctx))
        return MCPGATE_EWOULDBLOCK;
    atomic_fetch_add(&l->pool_runs, 1);
    *result = mcp_result_text("on the pool");
    return 0;
}

static void continue_on_pool(struct mcp_ctx *ctx, void *arg)
{
    (void)arg;
    mcp_ctx_finish(ctx, 0,
                   mcp_result_text(mcp_ctx_on_pool(ctx) ? "continued on the pool" : "inline"));
}

/* Defers, then continues on the pool. */
static int tool_continues(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)args, (void)result, (void)udata;
    mcp_ctx_run(ctx, continue_on_pool, NULL);
    return MCPGATE_EDEFERRED;
}

/* Declares an outputSchema, answers later without structuredContent: the engine's checks run
 * on the finishing thread too. */
static int tool_bad_later(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    (void)args, (void)result, (void)udata;
    mcp_ctx_finish(ctx, 0, mcp_result_text("no structure"));
    return MCPGATE_EDEFERRED;
}

static void add_later_tools(struct fixture *f, struct later *l)
{
    const char *text = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                       "\"required\":[\"text\"]}";
    struct mcp_tool_def defs[] = {
        {.name = "later", .handler = tool_later, .udata = l, .flags = MCP_TOOL_NONBLOCKING},
        {.name = "later_pool", .handler = tool_later, .udata = l},
        {.name = "at_once", .input_schema = text, .handler = tool_at_once,
         .flags = MCP_TOOL_NONBLOCKING},
        {.name = "forever", .handler = tool_forever, .udata = l, .flags = MCP_TOOL_NONBLOCKING},
        {.name = "picky", .handler = tool_picky, .udata = l, .flags = MCP_TOOL_NONBLOCKING},
        {.name = "continues", .handler = tool_continues, .flags = MCP_TOOL_NONBLOCKING},
        {.name = "bad_later", .output_schema = "{\"type\":\"object\"}", .handler = tool_bad_later,
         .flags = MCP_TOOL_NONBLOCKING},
    };
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        assert_int_equal(mcp_tool_add(f->srv, &defs[i]), 0);
}

static const char *text_of(json_t *m)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(result(m), "content"), 0), "text"));
}

static bool answered(struct fixture *f, json_int_t id)
{
    bool found = false;
    pthread_mutex_lock(&f->cap.mu);
    size_t k;
    json_t *x;
    json_array_foreach(f->cap.msgs, k, x) {
        json_t *mid = json_object_get(x, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id &&
            json_object_get(x, "method") == NULL)
            found = true;
    }
    pthread_mutex_unlock(&f->cap.mu);
    return found;
}

static void test_deferred(void **state)
{
    struct fixture *f = *state;
    struct later l = {0};
    add_later_tools(f, &l);
    initialize(f, "2025-11-25", "{}");
    static const struct {
        const char *tool, *args, *want;
    } cases[] = {
        {"later", "{}", "done later"},       /* inline, answered by another thread */
        {"later_pool", "{}", "done later"},  /* the same from a worker */
        {"at_once", "{\"text\":\"quick\"}", "quick"}, /* answered before the handler returned */
        {"picky", "{}", "on the pool"},      /* inline first, then again on the pool */
        {"continues", "{}", "continued on the pool"},
    };
    json_int_t id = 10;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++, id++) {
        feedf(f,
              "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"%s\",\"arguments\":%s}}",
              (long long)id, cases[i].tool, cases[i].args);
        json_t *m = answer(f, id);
        if (strcmp(text_of(m), cases[i].want) != 0)
            fail_msg("%s: got '%s'", cases[i].tool, text_of(m));
        json_decref(m);
    }
    assert_int_equal(atomic_load(&l.pool_runs), 1);
    /* arguments are checked before the handler, inline: it never runs on invalid ones */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"at_once\",\"arguments\":{}}}");
    json_t *m = answer(f, 20);
    assert_true(json_is_true(json_object_get(result(m), "isError")));
    json_decref(m);
    /* the outputSchema check runs on the finishing thread */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"bad_later\"}}");
    m = answer(f, 21);
    assert_int_equal(error_code(m), JSONRPC_INTERNAL_ERROR);
    assert_non_null(strstr(error_message(m), "declares an outputSchema"));
    json_decref(m);
    /* many at once, answered from their own threads in any order */
    for (id = 100; id < 164; id++)
        feedf(f,
              "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"later\"}}",
              (long long)id);
    for (id = 100; id < 164; id++) {
        m = answer(f, id);
        assert_string_equal(text_of(m), "done later");
        json_decref(m);
    }
}

static void test_deferred_cancel(void **state)
{
    struct fixture *f = *state;
    struct later l = {0};
    add_later_tools(f, &l);
    initialize(f, "2025-11-25", "{}");
    /* notifications/cancelled reaches the handler's hook, which ends the call: no answer */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"forever\"}}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
            "\"requestId\":30}}");
    assert_int_equal(atomic_load(&l.cancels), 1);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"ping\"}");
    json_t *m = answer(f, 31);
    json_decref(m);
    assert_false(answered(f, 30));
    pthread_mutex_lock(&f->s->mu);
    assert_int_equal(f->s->running_jobs, 0);
    pthread_mutex_unlock(&f->s->mu);
    /* a deferred call still running when the session closes is cancelled, and close does not
     * wait for an answer that would never come (teardown closes) */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":32,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"forever\"}}");
    mcp_session_close(f->s);
    assert_int_equal(atomic_load(&l.cancels), 2);
    assert_false(answered(f, 32));
    struct mcp_session_io io = {.send = capture_send, .arg = &f->cap};
    f->s = mcp_session_new(f->srv, &io); /* for teardown */
}

static int dummy_resource(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    (void)ctx;
    (void)udata;
    *contents = json_pack("[{s:s, s:s}]", "uri", uri, "text", "dummy");
    return 0;
}

static atomic_int released;
static void count_release(void *udata)
{
    assert_ptr_equal(udata, &released);
    atomic_fetch_add(&released, 1);
}

/* Templates are unique by their string and can be taken away (the gateway re-registers an
 * upstream's templates when its list changes); the release hook runs once an entry is gone,
 * never for an add refused. */
static void test_template_registry(void **state)
{
    struct fixture *f = *state;
    atomic_store(&released, 0);
    struct mcp_resource_template_def d = {.uri_template = "demo://numbers/{n}", .name = "again",
                                          .handler = dummy_resource, .udata = &released,
                                          .release = count_release};
    assert_int_equal(mcp_resource_template_add(f->srv, &d), MCPGATE_EEXISTS);
    assert_int_equal(atomic_load(&released), 0);
    d.uri_template = "other://{x}";
    assert_int_equal(mcp_resource_template_add(f->srv, &d), 0);
    initialize(f, "2025-11-25", "{}");
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/templates/list\"}");
    json_t *m = answer(f, 2);
    json_t *list = json_object_get(result(m), "resourceTemplates");
    assert_int_equal(json_array_size(list), 2);
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":{"
            "\"uri\":\"other://7\"}}");
    m = answer(f, 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(result(m), "contents"), 0), "text")),
                        "dummy");
    json_decref(m);
    assert_int_equal(atomic_load(&released), 0);
    assert_int_equal(mcp_resource_template_remove(f->srv, "other://{x}"), 0);
    assert_int_equal(atomic_load(&released), 1);
    assert_int_equal(mcp_resource_template_remove(f->srv, "other://{x}"), MCPGATE_ENOTFOUND);
    assert_int_equal(atomic_load(&released), 1);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{"
            "\"uri\":\"other://7\"}}");
    m = answer(f, 4);
    assert_non_null(json_object_get(m, "error"));
    json_decref(m);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/templates/list\"}");
    m = answer(f, 5);
    list = json_object_get(result(m), "resourceTemplates");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "uriTemplate")),
                        "demo://numbers/{n}");
    json_decref(m);
}

struct watch_log {
    pthread_mutex_t mu;
    char text[512];
};

static void watch_rec(void *arg, const char *uri, bool on)
{
    struct watch_log *w = arg;
    pthread_mutex_lock(&w->mu);
    size_t n = strlen(w->text);
    snprintf(w->text + n, sizeof w->text - n, "%s%s ", on ? "+" : "-", uri);
    pthread_mutex_unlock(&w->mu);
}

static void expect_watch(struct watch_log *w, const char *want)
{
    pthread_mutex_lock(&w->mu);
    if (strcmp(w->text, want) != 0)
        fail_msg("watch: got '%s', want '%s'", w->text, want);
    w->text[0] = '\0';
    pthread_mutex_unlock(&w->mu);
}

/* The watch hook hears a URI's first subscriber and its last, over sessions and listens. */
static void test_watch(void **state)
{
    struct fixture *f = *state;
    struct watch_log w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    mcp_server_set_watch(f->srv, watch_rec, &w);
    initialize(f, "2025-11-25", "{}");
    static const char sub[] = "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"resources/%s\","
                              "\"params\":{\"uri\":\"%s\"}}";
    json_t *m;
#define ASK(id, verb, uri)                                                                         \
    do {                                                                                           \
        feedf(f, sub, id, verb, uri);                                                              \
        m = answer(f, id);                                                                         \
        result(m);                                                                                 \
        json_decref(m);                                                                            \
    } while (0)
    ASK(2, "subscribe", "demo://readme");
    ASK(3, "subscribe", "demo://readme"); /* again: still one */
    ASK(4, "subscribe", "demo://numbers/7");
    expect_watch(&w, "+demo://readme +demo://numbers/7 ");
    /* a second session on the same URI: no news; its close neither */
    struct capture cap2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .msgs = json_array()};
    struct mcp_session_io io = {.send = capture_send, .arg = &cap2};
    struct mcp_session *s2 = mcp_session_new(f->srv, &io);
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{"
                       "\"name\":\"u\",\"version\":\"1\"}}}";
    mcp_session_feed(s2, init, strlen(init), NULL);
    const char *sub2 = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/subscribe\","
                       "\"params\":{\"uri\":\"demo://readme\"}}";
    mcp_session_feed(s2, sub2, strlen(sub2), NULL);
    for (int i = 0; i < 5000 && json_array_size(cap2.msgs) < 2; i++)
        usleep(1000);
    assert_int_equal(json_array_size(cap2.msgs), 2);
    /* news for one session reaches that one only */
    mcp_resource_updated_in(f->srv, s2->key, "demo://readme");
    for (int i = 0; i < 5000 && json_array_size(cap2.msgs) < 3; i++)
        usleep(1000);
    assert_int_equal(json_array_size(cap2.msgs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cap2.msgs, 2), "method")),
                        "notifications/resources/updated");
    mcp_resource_updated(f->srv, "demo://readme"); /* then news for all: f's first */
    m = sent_method(f, "notifications/resources/updated");
    assert_non_null(m);
    json_decref(m);
    pthread_mutex_lock(&f->cap.mu);
    size_t updates = 0, k;
    json_t *x;
    json_array_foreach (f->cap.msgs, k, x)
        updates += json_object_get(x, "method") != NULL &&
                   strcmp(json_string_value(json_object_get(x, "method")),
                          "notifications/resources/updated") == 0;
    pthread_mutex_unlock(&f->cap.mu);
    assert_int_equal(updates, 1);
    ASK(5, "unsubscribe", "demo://readme");
    ASK(6, "unsubscribe", "demo://nothing"); /* never subscribed: no news */
    expect_watch(&w, "");
    mcp_session_close(s2);
    json_decref(cap2.msgs);
    expect_watch(&w, "-demo://readme ");
    /* a 2026-07-28 listen holds its URIs (each once) until it is cancelled */
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"subscriptions/listen\",\"params\":{"
            "\"notifications\":{\"resourceSubscriptions\":[\"demo://readme\",\"demo://readme\","
            "\"demo://numbers/7\"]}," MODERN_META("{}") "}}");
    m = sent_method(f, "notifications/subscriptions/acknowledged");
    assert_non_null(m);
    json_decref(m);
    expect_watch(&w, "+demo://readme ");
    feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
            "\"requestId\":7}}");
    expect_watch(&w, "-demo://readme ");
    /* the session's own subscriptions end with it */
    mcp_session_close(f->s);
    expect_watch(&w, "-demo://numbers/7 ");
    struct mcp_session_io io1 = {.send = capture_send, .arg = &f->cap};
    f->s = mcp_session_new(f->srv, &io1); /* for teardown */
    mcp_server_set_watch(f->srv, NULL, NULL);
#undef ASK
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_framing_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancellation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_elicitation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modern_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mrtr_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mrtr_integrity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
