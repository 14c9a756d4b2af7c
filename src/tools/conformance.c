/* The fixtures of the official MCP conformance suite's reference server, as specified in
 * docs/conformance-fixtures.md §6 (tools, resources, prompts, completion) with the MRTR rules
 * of §6.5. Every question to the client goes through mcp_ctx_ask(), so each tool works in both
 * eras: a server-to-client request in the legacy era, an InputRequiredResult in 2026-07-28. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "tools/tools.h"

/* 1x1 red PNG and a minimal WAV (§6 constants). */
/* clang-format off */
#define IMG                                                                                        \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
#define WAV "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
/* clang-format on */

#define NO_ARGS "{\"type\":\"object\",\"properties\":{}}"
#define IMAGE "{\"type\":\"image\",\"data\":\"" IMG "\",\"mimeType\":\"image/png\"}"

/* A positive return of ask_form(): the legacy user did not accept. */
#define DECLINED 1

/* ---- helpers ---- */

static json_t *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *textf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return mcp_result_text("");
    char *buf = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    json_t *r = mcp_result_text(buf);
    free(buf);
    return r;
}

/* Compact JSON text of v (owned by the caller), "{}" when v is NULL. */
static char *dump(json_t *v)
{
    return v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : xstrdup("{}");
}

/* A one-field form: {"mode":"form","message","requestedSchema":{field: {type}, required}}. */
static json_t *form(const char *message, const char *field, const char *type)
{
    return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}", "mode", "form", "message", message,
                     "requestedSchema", "type", "object", "properties", field, "type", type,
                     "required", field);
}

static json_t *sampling(const char *text, int max_tokens)
{
    return json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content",
                     "type", "text", "text", text, "maxTokens", max_tokens);
}

static bool accepted(json_t *answer)
{
    const char *a = json_string_value(json_object_get(answer, "action"));
    return a != NULL && strcmp(a, "accept") == 0;
}

/* content.name and the like of an accepted elicitation ("" when absent). */
static const char *field(json_t *answer, const char *name)
{
    const char *s = json_string_value(json_object_get(json_object_get(answer, "content"), name));
    return s != NULL ? s : "";
}

/* The text of a CreateMessageResult (content is one block, or an array in 2025-11-25). */
static const char *sampled_text(json_t *answer)
{
    json_t *c = json_object_get(answer, "content");
    if (json_is_array(c))
        c = json_array_get(c, 0);
    return json_string_value(json_object_get(c, "text"));
}

/* Asks the elicitation form params (stolen) under key; 0 with *answer (owned) accepted. A
 * non-accepted answer is not an answer (§6.5): in 2026-07-28 it is dropped and the question
 * asked again (MCPGATE_EINPUT_REQUIRED); in the legacy era it gives DECLINED. */
static int ask_form(struct mcp_ctx *ctx, const char *key, json_t *params, json_t **answer)
{
    int r = mcp_ctx_ask(ctx, key, "elicitation/create", json_incref(params), answer);
    if (r == 0 && !accepted(*answer)) {
        json_decref(*answer);
        *answer = NULL;
        if (mcp_ctx_is_modern(ctx)) {
            mcp_ctx_forget(ctx, key);
            r = mcp_ctx_ask(ctx, key, "elicitation/create", json_incref(params), answer);
        } else {
            r = DECLINED;
        }
    }
    if (r != 0) {
        json_decref(*answer); /* a legacy client's error object */
        *answer = NULL;
    }
    json_decref(params);
    return r;
}

/* Asks a sampling or roots question; drops a legacy client's error object. */
static int ask(struct mcp_ctx *ctx, const char *key, const char *method, json_t *params,
               json_t **answer)
{
    int r = mcp_ctx_ask(ctx, key, method, params, answer);
    if (r != 0) {
        json_decref(*answer);
        *answer = NULL;
    }
    return r;
}

/* What a handler does with a failed ask: a declined legacy form is a result, the rest (input
 * required, unsupported, cancelled) goes back to the engine. */
static int unanswered(int r, json_t **result)
{
    if (r != DECLINED)
        return r;
    *result = mcp_result_error("The user did not accept the request for input");
    return 0;
}

/* Folds the outcome of one of several batched asks: input-required keeps going (the questions
 * go out together), anything else that failed wins. */
static int batch(int acc, int r)
{
    return acc == 0 || acc == MCPGATE_EINPUT_REQUIRED ? (r != 0 ? r : acc) : acc;
}

/* Tools that issue requestState accept answers only together with it (§6.5): a 2026-07-28
 * retry without state has its answers dropped, so the questions are asked again. */
static void require_state(struct mcp_ctx *ctx, const char *const *keys)
{
    if (!mcp_ctx_is_modern(ctx) || mcp_ctx_state_get(ctx) != NULL)
        return;
    for (; *keys != NULL; keys++)
        mcp_ctx_forget(ctx, *keys);
}

static int ask_user_name(struct mcp_ctx *ctx, json_t **answer)
{
    return ask_form(ctx, "user_name", form("What is your name?", "name", "string"), answer);
}

static json_t *confirm_form(void)
{
    return form("Please confirm", "ok", "boolean");
}

/* ---- 2025-era tools ---- */

/* udata: the JSON text of the whole CallToolResult. */
static int static_result(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    *result = json_loads(udata, 0, NULL);
    return *result != NULL ? 0 : MCPGATE_EINVALID;
}

static int with_logging(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    static const char *const steps[] = {"Tool execution started", "Tool processing data",
                                        "Tool execution completed"};
    for (size_t i = 0; i < 3; i++) {
        if (i > 0 && mcp_ctx_sleep(ctx, 50) != 0)
            return MCPGATE_ECANCELLED;
        mcp_ctx_log(ctx, MCP_LOG_INFO, NULL, json_string(steps[i]));
    }
    *result = mcp_result_text("Tool with logging executed successfully");
    return 0;
}

static int with_progress(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    for (int step = 0; step <= 100; step += 50) {
        char msg[64];
        if (step > 0 && mcp_ctx_sleep(ctx, 50) != 0)
            return MCPGATE_ECANCELLED;
        snprintf(msg, sizeof(msg), "Completed step %d of 100", step);
        mcp_ctx_progress(ctx, step, 100, msg);
    }
    json_t *tok = mcp_ctx_progress_token(ctx);
    if (json_is_string(tok))
        *result = mcp_result_text(json_string_value(tok));
    else if (json_is_integer(tok))
        *result = textf("%lld", (long long)json_integer_value(tok));
    else
        *result = mcp_result_text("0");
    return 0;
}

static int reconnection(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    if (mcp_ctx_sleep(ctx, 100) != 0)
        return MCPGATE_ECANCELLED;
    *result = mcp_result_text("Reconnection test completed successfully. If you received this, "
                              "the client properly reconnected after stream closure.");
    return 0;
}

static int sample(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *prompt = json_string_value(json_object_get(args, "prompt"));
    json_t *answer = NULL;
    int r = mcp_ctx_ask(ctx, "llm_response", "sampling/createMessage",
                        sampling(prompt ? prompt : "", 100), &answer);
    if (r == MCPGATE_EINPUT_REQUIRED || r == MCPGATE_ECANCELLED ||
        (r == MCPGATE_EUNSUPPORTED && mcp_ctx_is_modern(ctx))) {
        json_decref(answer);
        return r;
    }
    if (r != 0) {
        const char *msg = json_string_value(json_object_get(answer, "message"));
        *result = mcp_result_error("Sampling not supported or error: %s",
                                   msg ? msg : mcpgate_strerror(r));
    } else {
        const char *text = sampled_text(answer);
        *result = textf("LLM response: %s", text ? text : "No response");
    }
    json_decref(answer);
    return 0;
}

/* Asks the form params (stolen) under key and reports `<prefix>: action=<a>, content=<json>`. */
static int report_elicitation(struct mcp_ctx *ctx, const char *key, json_t *params,
                              const char *prefix, json_t **result)
{
    json_t *answer = NULL;
    int r = mcp_ctx_ask(ctx, key, "elicitation/create", params, &answer);
    if (r == MCPGATE_EINPUT_REQUIRED || r == MCPGATE_ECANCELLED ||
        (r == MCPGATE_EUNSUPPORTED && mcp_ctx_is_modern(ctx))) {
        json_decref(answer);
        return r;
    }
    if (r != 0) {
        const char *msg = json_string_value(json_object_get(answer, "message"));
        *result = mcp_result_error("Elicitation not supported or error: %s",
                                   msg ? msg : mcpgate_strerror(r));
    } else {
        const char *action = json_string_value(json_object_get(answer, "action"));
        char *content = dump(json_object_get(answer, "content"));
        *result = textf("%s: action=%s, content=%s", prefix, action ? action : "", content);
        free(content);
    }
    json_decref(answer);
    return 0;
}

static int elicit(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *message = json_string_value(json_object_get(args, "message"));
    json_t *params = json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}}", "mode", "form",
                               "message", message ? message : "", "requestedSchema", "type",
                               "object", "properties", "response", "type", "string", "description",
                               "User's response", "required", "response");
    return report_elicitation(ctx, "user_response", params, "User response", result);
}

/* clang-format off */
static const char sep1034_form[] =
    "{\"mode\":\"form\",\"message\":\"Please review and update the form fields with defaults\","
    "\"requestedSchema\":{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"description\":\"User name\",\"default\":\"John Doe\"},"
    "\"age\":{\"type\":\"integer\",\"description\":\"User age\",\"default\":30},"
    "\"score\":{\"type\":\"number\",\"description\":\"User score\",\"default\":95.5},"
    "\"status\":{\"type\":\"string\",\"description\":\"User status\","
    "\"enum\":[\"active\",\"inactive\",\"pending\"],\"default\":\"active\"},"
    "\"verified\":{\"type\":\"boolean\",\"description\":\"Verification status\","
    "\"default\":true}},\"required\":[]}}";

#define TITLED(a, b, c)                                                                            \
    "[{\"const\":\"value1\",\"title\":\"" a "\"},{\"const\":\"value2\",\"title\":\"" b "\"},"   \
    "{\"const\":\"value3\",\"title\":\"" c "\"}]"

static const char sep1330_form[] =
    "{\"mode\":\"form\",\"message\":\"Please select options from the enum fields\","
    "\"requestedSchema\":{\"type\":\"object\",\"properties\":{"
    "\"untitledSingle\":{\"type\":\"string\",\"description\":\"Select one option\","
    "\"enum\":[\"option1\",\"option2\",\"option3\"]},"
    "\"titledSingle\":{\"type\":\"string\",\"description\":\"Select one option with titles\","
    "\"oneOf\":" TITLED("First Option", "Second Option", "Third Option") "},"
    "\"legacyEnum\":{\"type\":\"string\",\"description\":\"Select one option (legacy)\","
    "\"enum\":[\"opt1\",\"opt2\",\"opt3\"],"
    "\"enumNames\":[\"Option One\",\"Option Two\",\"Option Three\"]},"
    "\"untitledMulti\":{\"type\":\"array\",\"description\":\"Select multiple options\","
    "\"minItems\":1,\"maxItems\":3,\"items\":{\"type\":\"string\","
    "\"enum\":[\"option1\",\"option2\",\"option3\"]}},"
    "\"titledMulti\":{\"type\":\"array\",\"description\":\"Select multiple options with titles\","
    "\"minItems\":1,\"maxItems\":3,\"items\":{\"anyOf\":"
    TITLED("First Choice", "Second Choice", "Third Choice") "}}},\"required\":[]}}";
/* clang-format on */

/* udata: the JSON text of the elicitation/create params. */
static int elicit_form(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *params = json_loads(udata, 0, NULL);
    if (params == NULL)
        return MCPGATE_EINVALID;
    return report_elicitation(ctx, udata == sep1034_form ? "defaults_form" : "enums_form", params,
                              "Elicitation completed", result);
}

static int schema_2020_12(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    char *a = dump(args);
    *result = textf("JSON Schema 2020-12 tool called with: %s", a);
    free(a);
    return 0;
}

/* ---- 2026-era tools ---- */

static int missing_capability(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    if (json_is_object(json_object_get(mcp_ctx_client_capabilities(ctx), "sampling"))) {
        *result = mcp_result_text("Sampling capability is declared");
        return 0;
    }
    /* Undeclared: the ask fails with MCPGATE_EUNSUPPORTED, which the engine sends as -32021. */
    json_t *answer = NULL;
    int r = ask(ctx, "capital_question", "sampling/createMessage",
                sampling("What is the capital of France?", 100), &answer);
    if (r != 0)
        return r;
    json_decref(answer);
    *result = mcp_result_text("Sampling capability is declared");
    return 0;
}

static int streaming_elicitation(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    int r = ask_form(ctx, "confirm", confirm_form(), &answer);
    if (r != 0)
        return unanswered(r, result);
    json_t *ok = json_object_get(json_object_get(answer, "content"), "ok");
    *result = textf("Confirmation received: ok=%s", json_is_true(ok) ? "true" : "false");
    json_decref(answer);
    return 0;
}

static int logging_tool(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    mcp_ctx_log(ctx, MCP_LOG_INFO, NULL, json_string("test_logging_tool executed"));
    *result = mcp_result_text("Logging tool executed");
    return 0;
}

/* udata: the server. The lists do not change (tools/list stays deterministic, §8.5). */
static int trigger_tools(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    mcp_server_notify_list_changed(udata, "tools");
    *result = mcp_result_text("Tool list change published");
    return 0;
}

static int trigger_prompts(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    mcp_server_notify_list_changed(udata, "prompts");
    *result = mcp_result_text("Prompt list change published");
    return 0;
}

static int custom_header(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *region = json_string_value(json_object_get(args, "region"));
    *result = textf("region=%s", region ? region : "");
    return 0;
}

/* ---- MRTR tools (§6.5) ---- */

static int irr_elicitation(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    int r = ask_user_name(ctx, &answer);
    if (r != 0)
        return unanswered(r, result);
    *result = textf("Hello, %s!", field(answer, "name"));
    json_decref(answer);
    return 0;
}

static int irr_sampling(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    int r = ask(ctx, "capital_question", "sampling/createMessage",
                sampling("What is the capital of France?", 100), &answer);
    if (r != 0)
        return r;
    const char *text = sampled_text(answer);
    *result = textf("Sampling result: %s", text ? text : "");
    json_decref(answer);
    return 0;
}

static int irr_list_roots(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    int r = ask(ctx, "client_roots", "roots/list", json_object(), &answer);
    if (r != 0)
        return r;
    *result = textf("Found %zu root(s)", json_array_size(json_object_get(answer, "roots")));
    json_decref(answer);
    return 0;
}

/* test_input_required_result_request_state and _tampered_state: confirm plus requestState (the
 * engine rejects a tampered state with -32602 before the handler runs). */
static int irr_confirm_state(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    static const char *const keys[] = {"confirm", NULL};
    json_t *answer = NULL;
    require_state(ctx, keys);
    int r = ask_form(ctx, "confirm", confirm_form(), &answer);
    if (r == MCPGATE_EINPUT_REQUIRED)
        mcp_ctx_state_set(ctx, json_pack("{s:i}", "round", 1));
    if (r != 0)
        return unanswered(r, result);
    *result = mcp_result_text("state-ok: requestState validated");
    json_decref(answer);
    return 0;
}

static int irr_multiple_inputs(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    static const char *const keys[] = {"user_name", "greeting", "client_roots", NULL};
    json_t *name = NULL, *greeting = NULL, *roots = NULL;
    require_state(ctx, keys);
    int r = ask_user_name(ctx, &name);
    if (r == 0 || r == MCPGATE_EINPUT_REQUIRED)
        r = batch(r, ask(ctx, "greeting", "sampling/createMessage",
                         sampling("Generate a greeting", 50), &greeting));
    if (r == 0 || r == MCPGATE_EINPUT_REQUIRED)
        r = batch(r, ask(ctx, "client_roots", "roots/list", json_object(), &roots));
    if (r == MCPGATE_EINPUT_REQUIRED)
        mcp_ctx_state_set(ctx, json_pack("{s:i}", "round", 1));
    if (r != 0) {
        r = unanswered(r, result);
        goto out;
    }
    const char *g = sampled_text(greeting);
    *result = textf("Name: %s; Greeting: %s; Roots: %zu", field(name, "name"), g ? g : "",
                    json_array_size(json_object_get(roots, "roots")));
out:
    json_decref(name);
    json_decref(greeting);
    json_decref(roots);
    return r;
}

/* Round 1 asks step1 (state {round:1}); round 2 asks step2 (a new state {round:2, name});
 * round 3 completes. Every answer so far comes back through the sealed requestState. */
static int irr_multi_round(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    static const char *const keys[] = {"step1", "step2", NULL};
    json_t *a1 = NULL, *a2 = NULL;
    require_state(ctx, keys);
    if (json_integer_value(json_object_get(mcp_ctx_state_get(ctx), "round")) < 2)
        mcp_ctx_forget(ctx, "step2"); /* step2 was not asked yet */
    int r = ask_form(ctx, "step1", form("Step 1: What is your name?", "name", "string"), &a1);
    if (r == MCPGATE_EINPUT_REQUIRED)
        mcp_ctx_state_set(ctx, json_pack("{s:i}", "round", 1));
    if (r != 0)
        return unanswered(r, result);
    const char *name = field(a1, "name");
    r = ask_form(ctx, "step2", form("Step 2: What is your favorite color?", "color", "string"),
                 &a2);
    if (r == MCPGATE_EINPUT_REQUIRED)
        mcp_ctx_state_set(ctx, json_pack("{s:i, s:s}", "round", 2, "name", name));
    if (r != 0) {
        r = unanswered(r, result);
    } else {
        *result = textf("Multi-round complete for %s who likes %s", name, field(a2, "color"));
    }
    json_decref(a1);
    json_decref(a2);
    return r;
}

/* Asks only what the client declared; any answer completes. */
static int irr_capabilities(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *caps = mcp_ctx_client_capabilities(ctx);
    char answered[128] = "";
    bool asked = false, pending = false;
    for (int i = 0; i < 3; i++) {
        json_t *answer = NULL;
        const char *key;
        int r;
        if (i == 0 && json_object_get(caps, "elicitation") != NULL) {
            key = "user_name";
            r = mcp_ctx_ask(ctx, key, "elicitation/create",
                            form("What is your name?", "name", "string"), &answer);
        } else if (i == 1 && json_object_get(caps, "sampling") != NULL) {
            key = "capital_question";
            r = mcp_ctx_ask(ctx, key, "sampling/createMessage",
                            sampling("What is the capital of France?", 100), &answer);
        } else if (i == 2 && json_object_get(caps, "roots") != NULL) {
            key = "client_roots";
            r = mcp_ctx_ask(ctx, key, "roots/list", json_object(), &answer);
        } else {
            continue;
        }
        json_decref(answer);
        asked = true;
        if (r == MCPGATE_ECANCELLED || r == MCPGATE_ETIMEOUT)
            return r;
        pending |= r == MCPGATE_EINPUT_REQUIRED;
        if (r == 0) {
            size_t n = strlen(answered);
            snprintf(answered + n, sizeof(answered) - n, "%s%s", n ? ", " : "", key);
        }
    }
    if (answered[0] != '\0')
        *result = textf("capabilities-ok: %s", answered);
    else if (pending)
        return MCPGATE_EINPUT_REQUIRED;
    else if (asked)
        *result = mcp_result_error("The client answered none of the requests for input");
    else
        *result = mcp_result_text("capabilities-ok: no client capabilities declared");
    return 0;
}

/* ---- resources ---- */

/* udata: the JSON text of the contents array. */
static int static_resource(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    *contents = json_loads(udata, 0, NULL);
    return *contents != NULL ? 0 : MCPGATE_EINVALID;
}

static int template_resource(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    const char *id = mcp_ctx_uri_var(ctx, "id");
    char data[160];
    snprintf(data, sizeof(data), "Data for ID: %.128s", id ? id : "");
    json_t *body =
        json_pack("{s:s, s:b, s:s}", "id", id ? id : "", "templateTest", 1, "data", data);
    char *text = dump(body);
    json_decref(body);
    *contents =
        json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "application/json", "text", text);
    free(text);
    return 0;
}

/* ---- prompts ---- */

static json_t *user_text(const char *text)
{
    return json_pack("{s:s, s:o}", "role", "user", "content", mcp_content_text(text));
}

/* udata: the JSON text of the messages array. */
static int static_prompt(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *messages = json_loads(udata, 0, NULL);
    if (messages == NULL)
        return MCPGATE_EINVALID;
    *result = json_pack("{s:o}", "messages", messages);
    return 0;
}

static int prompt_with_arguments(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *a1 = json_string_value(json_object_get(args, "arg1"));
    const char *a2 = json_string_value(json_object_get(args, "arg2"));
    json_t *r = textf("Prompt with arguments: arg1='%s', arg2='%s'", a1 ? a1 : "", a2 ? a2 : "");
    *result = json_pack("{s:[{s:s, s:O}]}", "messages", "role", "user", "content",
                        json_array_get(json_object_get(r, "content"), 0));
    json_decref(r);
    return 0;
}

static int prompt_with_resource(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *uri = json_string_value(json_object_get(args, "resourceUri"));
    *result = json_pack("{s:[{s:s, s:{s:s, s:{s:s, s:s, s:s}}}, o]}", "messages", "role", "user",
                        "content", "type", "resource", "resource", "uri", uri ? uri : "",
                        "mimeType", "text/plain", "text", "Embedded resource content for testing.",
                        user_text("Please process the embedded resource above."));
    return 0;
}

static int prompt_input_required(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    int r = ask_form(ctx, "user_context",
                     form("What context should the prompt use?", "context", "string"), &answer);
    if (r == DECLINED) {
        *result = json_pack("{s:[o]}", "messages", user_text("Prompt without context"));
        return 0;
    }
    if (r != 0)
        return r;
    json_t *m = textf("Prompt with context: %s", field(answer, "context"));
    *result = json_pack("{s:[{s:s, s:O}]}", "messages", "role", "user", "content",
                        json_array_get(json_object_get(m, "content"), 0));
    json_decref(m);
    json_decref(answer);
    return 0;
}

static int complete(struct mcp_ctx *ctx, json_t *ref, const char *arg, const char *value,
                    json_t *context_args, json_t **values, void *udata)
{
    *values = json_array();
    return 0;
}

/* ---- registration ---- */

#define STATIC(text) .handler = static_result, .udata = (void *)(text)
#define IRR_TOOL(n, d, fn)                                                                         \
    {                                                                                              \
        .name = "test_input_required_result_" n, .description = d, .input_schema = NO_ARGS,        \
        .handler = fn                                                                              \
    }

static const char schema_2020_12_text[] =
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
    "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\",\"properties\":{"
    "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"},"
    "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},"
    "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
    "\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
    "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},"
    "\"required\":[\"contactMethod\"]},"
    "\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},"
    "\"additionalProperties\":false}";

static const struct mcp_tool_def tools[] = {
    {.name = "test_simple_text",
     .description = "Tests simple text content response",
     .input_schema = NO_ARGS,
     STATIC("{\"content\":[{\"type\":\"text\","
            "\"text\":\"This is a simple text response for testing.\"}]}")},
    {.name = "test_image_content",
     .description = "Tests image content response",
     .input_schema = NO_ARGS,
     STATIC("{\"content\":[" IMAGE "]}")},
    {.name = "test_audio_content",
     .description = "Tests audio content response",
     .input_schema = NO_ARGS,
     STATIC("{\"content\":[{\"type\":\"audio\",\"data\":\"" WAV
            "\",\"mimeType\":\"audio/wav\"}]}")},
    {.name = "test_embedded_resource",
     .description = "Tests embedded resource content response",
     .input_schema = NO_ARGS,
     STATIC(
         "{\"content\":[{\"type\":\"resource\",\"resource\":{\"uri\":\"test://embedded-resource\","
         "\"mimeType\":\"text/plain\",\"text\":\"This is an embedded resource content.\"}}]}")},
    {.name = "test_multiple_content_types",
     .description = "Tests response with multiple content types (text, image, resource)",
     .input_schema = NO_ARGS,
     STATIC("{\"content\":[{\"type\":\"text\",\"text\":\"Multiple content types test:\"}," IMAGE
            ",{\"type\":\"resource\",\"resource\":{\"uri\":\"test://mixed-content-resource\","
            "\"mimeType\":\"application/json\",\"text\":\"{\\\"test\\\":\\\"data\\\","
            "\\\"value\\\":123}\"}}]}")},
    {.name = "test_tool_with_logging",
     .description = "Tests tool that emits log messages during execution",
     .input_schema = NO_ARGS,
     .handler = with_logging},
    {.name = "test_tool_with_progress",
     .description = "Tests tool that reports progress notifications",
     .input_schema = NO_ARGS,
     .handler = with_progress},
    {.name = "test_error_handling",
     .description = "Tests error response handling",
     .input_schema = NO_ARGS,
     STATIC("{\"content\":[{\"type\":\"text\","
            "\"text\":\"This tool intentionally returns an error for testing\"}],"
            "\"isError\":true}")},
    {.name = "test_reconnection",
     .description = "Tests SSE stream disconnection and client reconnection (SEP-1699). Server "
                    "will close the stream mid-call and send the result after client reconnects.",
     .input_schema = NO_ARGS,
     .handler = reconnection},
    {.name = "test_sampling",
     .description = "Tests server-initiated sampling (LLM completion request)",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\","
                     "\"description\":\"The prompt to send to the LLM\"}},"
                     "\"required\":[\"prompt\"]}",
     .handler = sample},
    {.name = "test_elicitation",
     .description = "Tests server-initiated elicitation (user input request)",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\","
                     "\"description\":\"The message to show the user\"}},"
                     "\"required\":[\"message\"]}",
     .handler = elicit},
    {.name = "test_elicitation_sep1034_defaults",
     .description = "Tests elicitation with default values per SEP-1034",
     .input_schema = NO_ARGS,
     .handler = elicit_form,
     .udata = (void *)sep1034_form},
    {.name = "test_elicitation_sep1330_enums",
     .description = "Tests elicitation with enum schema improvements per SEP-1330",
     .input_schema = NO_ARGS,
     .handler = elicit_form,
     .udata = (void *)sep1330_form},
    {.name = "json_schema_2020_12_tool",
     .description = "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
     .input_schema = schema_2020_12_text,
     .handler = schema_2020_12},
    {.name = "test_missing_capability",
     .description = "Needs the client's sampling capability: without it the call fails with "
                    "-32021 and data.requiredCapabilities",
     .input_schema = NO_ARGS,
     .handler = missing_capability},
    {.name = "test_streaming_elicitation",
     .description = "Asks the user to confirm through an InputRequiredResult, never through a "
                    "request on the response stream",
     .input_schema = NO_ARGS,
     .handler = streaming_elicitation},
    {.name = "test_logging_tool",
     .description = "Sends one log message when the request's _meta sets a logLevel",
     .input_schema = NO_ARGS,
     .handler = logging_tool},
    {.name = "test_trigger_tool_change",
     .description = "Publishes notifications/tools/list_changed to subscribed listeners",
     .input_schema = NO_ARGS,
     .handler = trigger_tools},
    {.name = "test_trigger_prompt_change",
     .description = "Publishes notifications/prompts/list_changed to subscribed listeners",
     .input_schema = NO_ARGS,
     .handler = trigger_prompts},
    IRR_TOOL("elicitation", "Asks the user's name through an InputRequiredResult (SEP-2322)",
             irr_elicitation),
    IRR_TOOL("sampling", "Asks the client for an LLM completion through an InputRequiredResult",
             irr_sampling),
    IRR_TOOL("list_roots", "Asks the client for its roots through an InputRequiredResult",
             irr_list_roots),
    IRR_TOOL("request_state", "Asks for a confirmation and checks the echoed requestState",
             irr_confirm_state),
    IRR_TOOL("multiple_inputs",
             "Asks for an elicitation, a sampling and the roots in one InputRequiredResult",
             irr_multiple_inputs),
    IRR_TOOL("multi_round", "Asks two questions in two rounds, carrying state between them",
             irr_multi_round),
    IRR_TOOL("tampered_state", "Asks for a confirmation; a tampered requestState is rejected",
             irr_confirm_state),
    IRR_TOOL("capabilities", "Asks only for the input the client's capabilities allow",
             irr_capabilities),
    {.name = "test_custom_header",
     .description = "Mirrors its region argument into the Mcp-Param-Region header (SEP-2243)",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"region\":{\"type\":\"string\","
                     "\"description\":\"Region to route to\",\"x-mcp-header\":\"Region\"},"
                     "\"query\":{\"type\":\"string\"}},\"required\":[\"region\"]}",
     .handler = custom_header},
};

static const struct mcp_resource_def resources[] = {
    {.uri = "test://static-text",
     .name = "static-text",
     .title = "Static Text Resource",
     .description = "A static text resource for testing",
     .mime_type = "text/plain",
     .size = -1,
     .handler = static_resource,
     .udata = (void *)"[{\"uri\":\"test://static-text\",\"mimeType\":\"text/plain\","
                      "\"text\":\"This is the content of the static text resource.\"}]"},
    {.uri = "test://static-binary",
     .name = "static-binary",
     .title = "Static Binary Resource",
     .description = "A static binary resource (image) for testing",
     .mime_type = "image/png",
     .size = -1,
     .handler = static_resource,
     .udata = (void *)"[{\"uri\":\"test://static-binary\",\"mimeType\":\"image/png\","
                      "\"blob\":\"" IMG "\"}]"},
    {.uri = "test://watched-resource",
     .name = "watched-resource",
     .title = "Watched Resource",
     .description = "A resource that auto-updates every 3 seconds",
     .mime_type = "text/plain",
     .size = -1,
     .handler = static_resource,
     .udata = (void *)"[{\"uri\":\"test://watched-resource\",\"mimeType\":\"text/plain\","
                      "\"text\":\"Watched resource content\"}]"},
};

static const struct mcp_prompt_def prompts[] = {
    {.name = "test_simple_prompt",
     .title = "Simple Test Prompt",
     .description = "A simple prompt without arguments",
     .handler = static_prompt,
     .udata = (void *)"[{\"role\":\"user\",\"content\":{\"type\":\"text\","
                      "\"text\":\"This is a simple prompt for testing.\"}}]"},
    {.name = "test_prompt_with_arguments",
     .title = "Prompt With Arguments",
     .description = "A prompt with required arguments",
     .arguments = "[{\"name\":\"arg1\",\"description\":\"First test argument\",\"required\":true},"
                  "{\"name\":\"arg2\",\"description\":\"Second test argument\",\"required\":true}]",
     .handler = prompt_with_arguments},
    {.name = "test_prompt_with_embedded_resource",
     .title = "Prompt With Embedded Resource",
     .description = "A prompt that includes an embedded resource",
     .arguments = "[{\"name\":\"resourceUri\",\"description\":\"URI of the resource to embed\","
                  "\"required\":true}]",
     .handler = prompt_with_resource},
    {.name = "test_prompt_with_image",
     .title = "Prompt With Image",
     .description = "A prompt that includes image content",
     .handler = static_prompt,
     .udata = (void *)"[{\"role\":\"user\",\"content\":" IMAGE "},{\"role\":\"user\","
                      "\"content\":{\"type\":\"text\","
                      "\"text\":\"Please analyze the image above.\"}}]"},
    {.name = "test_input_required_result_prompt",
     .title = "Prompt With Input Required",
     .description = "A prompt that asks the client for context through an InputRequiredResult "
                    "(SEP-2322)",
     .handler = prompt_input_required},
};

int tools_conformance_register(struct mcp_server *srv)
{
    int r;
    for (size_t i = 0; i < sizeof(tools) / sizeof(*tools); i++) {
        struct mcp_tool_def d = tools[i];
        if (d.handler == trigger_tools || d.handler == trigger_prompts)
            d.udata = srv;
        if ((r = mcp_tool_add(srv, &d)) != 0)
            return r;
    }
    for (size_t i = 0; i < sizeof(resources) / sizeof(*resources); i++) {
        if ((r = mcp_resource_add(srv, &resources[i])) != 0)
            return r;
    }
    struct mcp_resource_template_def tpl = {.uri_template = "test://template/{id}/data",
                                            .name = "template",
                                            .title = "Resource Template",
                                            .description =
                                                "A resource template with parameter substitution",
                                            .mime_type = "application/json",
                                            .handler = template_resource};
    if ((r = mcp_resource_template_add(srv, &tpl)) != 0)
        return r;
    for (size_t i = 0; i < sizeof(prompts) / sizeof(*prompts); i++) {
        if ((r = mcp_prompt_add(srv, &prompts[i])) != 0)
            return r;
    }
    mcp_completion_set(srv, complete, NULL);
    return 0;
}
