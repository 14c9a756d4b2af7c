/* libFuzzer target: the gateway's names for resources (gateway/resources.c). The input is
 * lines "<upstream letter a-d><URI or template>" (what upstreams list is theirs to choose).
 * The plan must give every offer a URI no other offer has, keep each upstream's unshared URIs
 * as they are, not depend on the order the upstreams are listed in, and namespace reversibly:
 * stripping a namespaced form gives the upstream's own URI back. URI template matching
 * (mcp/server.c) runs on every pair of lines. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_int.h"
#include "mcp/mcp_int.h"

static const char *const names[] = {"a", "b-2", "c_c", "dd"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || memchr(data, '\0', size) != NULL)
        return 0;
    char *text = strndup((const char *)data, size);
    json_t *lists[4] = {json_array(), json_array(), json_array(), json_array()};
    json_t *lines = json_array();
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (json_array_size(lines) >= 64)
            break;
        json_t *s = json_string(l + 1);
        if (s == NULL)
            continue; /* not UTF-8: jansson refuses it, as it would refuse the message */
        json_array_append_new(lists[((unsigned char)l[0]) % 4], json_incref(s));
        json_array_append_new(lines, s);
    }
    free(text);
    json_t *fwd = json_object(), *rev = json_object();
    for (int k = 0; k < 4; k++)
        json_object_set(fwd, names[k], lists[k]);
    for (int k = 3; k >= 0; k--)
        json_object_set(rev, names[k], lists[k]);
    json_t *plan = gw_ns_plan(fwd), *plan2 = gw_ns_plan(rev);
    if (!json_equal(plan, plan2))
        __builtin_trap();
    json_t *seen = json_object();
    for (int k = 0; k < 4; k++) {
        json_t *mine = json_object_get(plan, names[k]);
        size_t i;
        json_t *v;
        json_array_foreach (lists[k], i, v) {
            const char *orig = json_string_value(v);
            const char *x = json_string_value(json_object_get(mine, orig));
            const char *exposed = x != NULL ? x : orig;
            char who[8];
            snprintf(who, sizeof who, "%d", k);
            json_t *key = json_pack("s+", who, orig);
            const char *had = json_string_value(json_object_get(seen, exposed));
            if (had != NULL && strcmp(had, json_string_value(key)) != 0)
                __builtin_trap(); /* two offers under one URI */
            json_object_set_new(seen, exposed, json_string(json_string_value(key)));
            json_decref(key);
            if (x != NULL) {
                char *back = gw_ns_strip(names[k], orig, x);
                if (back == NULL || strcmp(back, orig) != 0)
                    __builtin_trap();
                free(back);
            }
        }
    }
    size_t i, j;
    json_t *a, *b;
    json_array_foreach (lines, i, a)
        json_array_foreach (lines, j, b)
            json_decref(uri_template_match(json_string_value(a), json_string_value(b)));
    json_decref(seen);
    json_decref(plan);
    json_decref(plan2);
    json_decref(fwd);
    json_decref(rev);
    json_decref(lines);
    for (int k = 0; k < 4; k++)
        json_decref(lists[k]);
    return 0;
}
