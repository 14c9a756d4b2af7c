#include <stdio.h>
#include <string.h>

#include "tools/tools.h"

int tools_register(struct mcp_server *srv, const char *names, const char **bad)
{
    static const struct {
        const char *name;
        int (*fn)(struct mcp_server *);
    } sets[] = {{"demo", tools_demo_register}, {"conformance", tools_conformance_register}};
    const char *p = names;
    *bad = NULL;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        size_t i;
        for (i = 0; i < sizeof(sets) / sizeof(*sets); i++) {
            if (strlen(sets[i].name) == n && strncmp(sets[i].name, p, n) == 0)
                break;
        }
        if (i == sizeof(sets) / sizeof(*sets)) {
            *bad = p;
            return MCPGATE_ENOTFOUND;
        }
        int r = sets[i].fn(srv);
        if (r != 0)
            return r;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}
