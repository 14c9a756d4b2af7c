/* libFuzzer target: the gateway's configuration parser (gateway/config.c). Any bytes: never a
 * crash or a leak; on success every upstream has a valid name, one of command or url, a scope;
 * on failure at least one located error. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_config *cfg = NULL;
    json_t *errors = NULL;
    int r = gw_config_parse((const char *)data, size, "fuzz.json", &cfg, &errors);
    if (r == 0) {
        assert(cfg != NULL && errors == NULL);
        for (size_t i = 0; i < cfg->nup; i++) {
            const struct gw_upstream_cfg *u = &cfg->up[i];
            assert(u->name != NULL && strlen(u->name) >= 1 && strlen(u->name) <= GW_NAME_MAX);
            assert(strstr(u->name, GW_SEP) == NULL);
            assert((u->command != NULL) != (u->url != NULL));
            assert(u->scope != NULL);
        }
        char *a = gw_tool_scopes(cfg), *b = gw_scopes(cfg);
        free(a);
        free(b);
        gw_config_free(cfg);
    } else {
        assert(cfg == NULL && json_array_size(errors) > 0);
        size_t i;
        json_t *e;
        json_array_foreach (errors, i, e)
            assert(strncmp(json_string_value(e), "fuzz.json: ", 11) == 0);
        json_decref(errors);
    }
    return 0;
}
