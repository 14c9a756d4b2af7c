#ifndef MCPGATE_CLI_H
#define MCPGATE_CLI_H

int cmd_serve(int argc, char **argv);
/* Parses a size such as 4194304, 4096k, 4M; returns 0 or -1. */
int cli_parse_size(const char *s, size_t *out);

#endif
