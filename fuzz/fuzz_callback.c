/* libFuzzer target: client/callback's request-head parser, which reads whatever a local
 * process or a browser sends to the sign-in listener. Must never crash or read past the input
 * (each input is parsed from an allocation of its exact size). On success the method is 1-7
 * upper-case letters, the path starts with '/' and holds only visible ASCII without '?' or
 * '#', and the query is an object of strings. The outcome of a complete head does not depend
 * on the bytes after it; an incomplete one is shorter than the cap, a too-big one is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/callback.h"

static int parse(const uint8_t *data, size_t size, struct cb_request *req)
{
    char why[256];
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        __builtin_trap();
    memcpy(p, data, size);
    why[0] = '\0';
    int r = cb_parse_request(p, size, req, why, sizeof why);
    free(p);
    if ((r == ERR_PARSE || r == ERR_TOOBIG) && why[0] == '\0')
        __builtin_trap();
    if (r != 0 && (req->path != NULL || req->query != NULL))
        __builtin_trap();
    return r;
}

static void check_ok(const struct cb_request *req)
{
    size_t ml = strlen(req->method);
    if (ml == 0 || ml >= sizeof req->method)
        __builtin_trap();
    for (size_t i = 0; i < ml; i++)
        if (req->method[i] < 'A' || req->method[i] > 'Z')
            __builtin_trap();
    if (req->path == NULL || req->path[0] != '/')
        __builtin_trap();
    for (const char *p = req->path; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#')
            __builtin_trap();
    if (!json_is_object(req->query))
        __builtin_trap();
    const char *k;
    json_t *v;
    json_object_foreach (req->query, k, v) {
        if (!json_is_string(v) || k[0] == '\0')
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cb_request req;
    int r = parse(data, size, &req);
    if (r == 0)
        check_ok(&req);
    else if (r == ERR_EOF && size >= CB_REQUEST_MAX)
        __builtin_trap();
    else if (r == ERR_TOOBIG && size < CB_REQUEST_MAX)
        __builtin_trap();
    else if (r != ERR_EOF && r != ERR_TOOBIG && r != ERR_PARSE)
        __builtin_trap();

    /* a complete head parses the same with more bytes after it */
    if ((r == 0 || r == ERR_PARSE) && size < CB_REQUEST_MAX) {
        static const char tail[] = "\r\n\r\nGET /x?y=\x01 HTTP/1.1\n\n";
        uint8_t *more = malloc(size + sizeof tail);
        if (more == NULL)
            __builtin_trap();
        memcpy(more, data, size);
        memcpy(more + size, tail, sizeof tail);
        struct cb_request req2;
        int r2 = parse(more, size + sizeof tail, &req2);
        free(more);
        if (r2 != r)
            __builtin_trap();
        if (r == 0 && (strcmp(req.method, req2.method) != 0 || strcmp(req.path, req2.path) != 0 ||
                       !json_equal(req.query, req2.query)))
            __builtin_trap();
        cb_request_clear(&req2);
    }
    cb_request_clear(&req);
    return 0;
}
