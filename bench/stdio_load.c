/* stdio_load: a load driver for MCP servers that speak newline-delimited JSON-RPC on stdio.
 *
 *   stdio_load [options] -- COMMAND [ARG...]
 *
 * It spawns COMMAND with pipes on stdin/stdout (stderr goes to --stderr FILE, default
 * /dev/null) and measures
 *   - cold start: spawn -> initialize response read, over --cold-runs fresh processes;
 *   - pipelined throughput: --window requests in flight, --requests tools/call echo requests
 *     in all or --duration seconds, whichever ends first; each response's id and echoed text
 *     are checked; latency is write -> read of the same id;
 *   - peak RSS of the server: VmHWM from /proc/PID/status just before stdin is closed, and
 *     ru_maxrss from wait4() after it exits.
 * It prints one line of key=value pairs on stdout and diagnostics on stderr.
 *
 * Exit status: 0 all answers right; 1 wrong answers (errors > 0, or the server did not exit
 * after EOF); 2 the run could not complete (spawn failed, server died or stalled, bad usage).
 * Timing never changes the exit status.
 *
 * Built by bench/stdio.sh with a plain `cc -O2`; no JSON library: responses are scanned just
 * enough to find the top-level "id", "result" and "error" keys and to confirm the line is one
 * complete, balanced JSON object. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LINE_MAX_BYTES (16u << 20) /* a response line longer than this is an error */
#define PROTOCOL_VERSION "2025-11-25"
#define INIT_ID 1

enum { RUN_OK = 0, RUN_WRONG = 1, RUN_FAILED = 2 };

struct opts {
    long long requests; /* measured tools/call requests */
    long long warmup;   /* unmeasured requests sent first */
    int window;         /* requests in flight */
    double duration_s;  /* cap on the measured phase; 0 = none */
    int cold_runs;
    bool cold_list; /* -t: cold start ends at the tools/list answer */
    const char *tool;   /* -T: the echo tool's name ("echo") */
    const char *arg;    /* -K: its argument ("text") */
    const char *prefix; /* -P: what the tool puts before the echoed text ("") */
    size_t text_bytes; /* length of the echoed text */
    double stall_s;    /* no response for this long with requests in flight = failure */
    const char *label;
    const char *stderr_path;
    char **argv; /* the server command */
};

struct server {
    pid_t pid;
    int in_fd;  /* our write end of the server's stdin; -1 once closed */
    int out_fd; /* our read end of the server's stdout */
};

/* Bytes read from the server, consumed a line at a time. */
struct rbuf {
    char *data; /* owned */
    size_t len, cap, scanned;
};

/* Bytes waiting to be written to the server. */
struct wbuf {
    char *data; /* owned */
    size_t off, len, cap;
};

struct response {
    bool has_id, has_result, has_error;
    long long id;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "stdio_load: out of memory\n");
        abort();
    }
    return q;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: stdio_load [-n REQUESTS] [-w WINDOW] [-d SECONDS] [-r COLD_RUNS]\n"
            "                  [-u WARMUP] [-s TEXT_BYTES] [-S STALL_SECONDS] [-l LABEL]\n"
            "                  [-e STDERR_FILE] [-t] [-T TOOL] [-K ARG] [-P PREFIX]\n"
            "                  -- COMMAND [ARG...]\n"
            "  -t: cold start ends at the tools/list answer, not initialize's\n"
            "  -T, -K, -P: the echo tool's name (echo), argument (text), and what it puts\n"
            "              before the echoed text in its answer (nothing)\n");
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o /* OUT */)
{
    *o = (struct opts){.requests = 200000,
                       .warmup = 0,
                       .window = 64,
                       .duration_s = 0,
                       .cold_runs = 10,
                       .text_bytes = 32,
                       .stall_s = 10,
                       .label = "server",
                       .stderr_path = "/dev/null",
                       .tool = "echo",
                       .arg = "text",
                       .prefix = ""};
    int opt;
    long long v;
    while ((opt = getopt(argc, argv, "+n:w:d:r:u:s:S:l:e:tT:K:P:h")) != -1) {
        switch (opt) {
        case 'n':
            if (parse_ll(optarg, 1, 1000000000LL, &o->requests) != 0)
                return -1;
            break;
        case 'u':
            if (parse_ll(optarg, 0, 1000000000LL, &o->warmup) != 0)
                return -1;
            break;
        case 'w':
            if (parse_ll(optarg, 1, 1000000, &v) != 0)
                return -1;
            o->window = (int)v;
            break;
        case 'r':
            if (parse_ll(optarg, 0, 100000, &v) != 0)
                return -1;
            o->cold_runs = (int)v;
            break;
        case 's':
            if (parse_ll(optarg, 16, 1 << 20, &v) != 0)
                return -1;
            o->text_bytes = (size_t)v;
            break;
        case 'd':
            if (parse_dbl(optarg, 0, 86400, &o->duration_s) != 0)
                return -1;
            break;
        case 'S':
            if (parse_dbl(optarg, 0.1, 86400, &o->stall_s) != 0)
                return -1;
            break;
        case 't': o->cold_list = true; break;
        case 'T': o->tool = optarg; break;
        case 'K': o->arg = optarg; break;
        case 'P': o->prefix = optarg; break;
        case 'l': o->label = optarg; break;
        case 'e': o->stderr_path = optarg; break;
        default: return -1;
        }
    }
    if (optind >= argc)
        return -1;
    o->argv = argv + optind;
    return 0;
}

/* ---- spawning and reaping ---- */

static int server_spawn(const struct opts *o, struct server *s /* OUT */)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int r = -1;

    s->pid = -1;
    s->in_fd = s->out_fd = -1;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        perror("stdio_load: pipe2");
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, o->stderr_path,
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e = posix_spawnp(&s->pid, o->argv[0], &fa, NULL, o->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        fprintf(stderr, "stdio_load: spawn %s: %s\n", o->argv[0], strerror(e));
        s->pid = -1;
        goto out;
    }
    s->in_fd = in[1];
    s->out_fd = out[0];
    in[1] = out[0] = -1;
    fcntl(s->in_fd, F_SETFL, fcntl(s->in_fd, F_GETFL) | O_NONBLOCK);
    fcntl(s->out_fd, F_SETFL, fcntl(s->out_fd, F_GETFL) | O_NONBLOCK);
    r = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return r;
}

/* Closes the server's stdin and waits up to grace_s for it to exit, then kills it.
 * Returns true if it exited on its own with status 0. */
static bool server_reap(struct server *s, double grace_s, struct rusage *ru /* OUT */)
{
    int status = 0;
    bool clean = false;

    memset(ru, 0, sizeof(*ru));
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    if (s->pid < 0)
        goto out;
    uint64_t deadline = now_ns() + (uint64_t)(grace_s * 1e9);
    for (;;) {
        /* Keep draining stdout so a server blocked writing can still see EOF and exit. */
        char sink[65536];
        while (s->out_fd >= 0 && read(s->out_fd, sink, sizeof(sink)) > 0)
            ;
        pid_t p = wait4(s->pid, &status, WNOHANG, ru);
        if (p == s->pid) {
            clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!clean)
                fprintf(stderr, "stdio_load: server exited with %s %d\n",
                        WIFEXITED(status) ? "status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            break;
        }
        if (p < 0 && errno != EINTR) {
            perror("stdio_load: wait4");
            break;
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "stdio_load: server pid %d did not exit %.1fs after EOF; killing\n",
                    (int)s->pid, grace_s);
            kill(s->pid, SIGKILL);
            wait4(s->pid, &status, 0, ru);
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    s->pid = -1;
out:
    if (s->out_fd >= 0)
        close(s->out_fd);
    s->out_fd = -1;
    return clean;
}

static long read_vmhwm_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* ---- buffers ---- */

static void wbuf_append(struct wbuf *w, const char *p, size_t n)
{
    if (w->off > 0 && w->off == w->len)
        w->off = w->len = 0;
    if (w->len + n > w->cap) {
        if (w->off > 0) {
            memmove(w->data, w->data + w->off, w->len - w->off);
            w->len -= w->off;
            w->off = 0;
        }
        if (w->len + n > w->cap) {
            w->cap = (w->len + n) * 2;
            w->data = xrealloc(w->data, w->cap);
        }
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

/* Writes what the pipe takes. Returns -1 if the server's stdin is gone. */
static int wbuf_flush(struct wbuf *w, int fd)
{
    while (w->off < w->len) {
        ssize_t n = write(fd, w->data + w->off, w->len - w->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            fprintf(stderr, "stdio_load: write to server: %s\n", strerror(errno));
            return -1;
        }
        w->off += (size_t)n;
    }
    return 0;
}

/* Reads what is available. Returns bytes read, 0 at EOF, -1 on error, -2 if nothing yet. */
static ssize_t rbuf_fill(struct rbuf *b, int fd)
{
    if (b->cap - b->len < 65536) {
        b->cap = b->cap * 2 + 65536;
        b->data = xrealloc(b->data, b->cap);
    }
    for (;;) {
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return -2;
        if (n < 0)
            fprintf(stderr, "stdio_load: read from server: %s\n", strerror(errno));
        if (n > 0)
            b->len += (size_t)n;
        return n;
    }
}

/* Returns the next complete line (without its '\n') or NULL; *too_long is set when the
 * unterminated tail is past LINE_MAX_BYTES. Lines stay valid until rbuf_compact(). */
static char *rbuf_line(struct rbuf *b, size_t *start, size_t *len /* OUT */, bool *too_long)
{
    char *nl = b->len > b->scanned ? memchr(b->data + b->scanned, '\n', b->len - b->scanned)
                                   : NULL;
    if (nl == NULL) {
        b->scanned = b->len;
        *too_long = b->len - *start > LINE_MAX_BYTES;
        return NULL;
    }
    char *line = b->data + *start;
    *len = (size_t)(nl - line);
    *start = (size_t)(nl - b->data) + 1;
    b->scanned = *start;
    return line;
}

static void rbuf_compact(struct rbuf *b, size_t start)
{
    memmove(b->data, b->data + start, b->len - start);
    b->len -= start;
    b->scanned -= start;
}

/* ---- response scanning ---- */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* Checks that s[0..n) is one balanced JSON object (strings and nesting only; scalars are not
 * validated) and picks out its top-level "id" (a number), "result" and "error" keys. */
static int scan_response(const char *s, size_t n, struct response *r /* OUT */)
{
    int depth = 0;
    size_t i = skip_ws(s, 0, n);

    memset(r, 0, sizeof(*r));
    if (i >= n || s[i] != '{')
        return -1;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            size_t k0 = ++i;
            while (i < n && s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            if (i >= n)
                return -1; /* unterminated string */
            size_t klen = i - k0;
            i++;
            if (depth != 1)
                continue;
            size_t j = skip_ws(s, i, n);
            if (j >= n || s[j] != ':')
                continue; /* a value, not a key */
            const char *k = s + k0;
            if (klen == 2 && memcmp(k, "id", 2) == 0) {
                j = skip_ws(s, j + 1, n);
                char *end;
                errno = 0;
                long long id = strtoll(s + j, &end, 10);
                if (end != s + j && errno == 0 && (*end == ',' || *end == '}' || *end == ' ')) {
                    r->has_id = true;
                    r->id = id;
                }
            } else if (klen == 6 && memcmp(k, "result", 6) == 0) {
                r->has_result = true;
            } else if (klen == 5 && memcmp(k, "error", 5) == 0) {
                r->has_error = true;
            }
            i = j + 1;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return -1;
            if (depth == 0) {
                i = skip_ws(s, i + 1, n);
                return i == n ? 0 : -1; /* nothing may follow the object */
            }
        }
        i++;
    }
    return -1; /* unbalanced: the line is cut short */
}

/* The echoed text of request `id`: "echo-<id>-xxxx..." padded to text_bytes. */
static size_t make_text(char *dst, size_t cap, long long id, size_t text_bytes)
{
    int n = snprintf(dst, cap, "echo-%lld-", id);
    size_t len = (size_t)n;
    while (len < text_bytes && len + 1 < cap)
        dst[len++] = 'x';
    dst[len] = '\0';
    return len;
}

/* True if line holds `"text" : "<text>"` for this request's text. */
static bool has_echo(const char *line, size_t n, const char *text, size_t tlen)
{
    const char *p = line, *end = line + n;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), text, tlen);
        if (q == NULL)
            return false;
        p = q + 1;
        if (q - line < 2 || q[-1] != '"' || q + tlen >= end || q[tlen] != '"')
            continue;
        const char *b = q - 2; /* walk back over ws ':' ws to "text" */
        while (b > line && (*b == ' ' || *b == '\t'))
            b--;
        if (b <= line || *b != ':')
            continue;
        b--;
        while (b > line && (*b == ' ' || *b == '\t'))
            b--;
        if (b - line >= 5 && memcmp(b - 5, "\"text\"", 6) == 0)
            return true;
    }
    return false;
}

/* ---- one session ---- */

static const char *init_request(void)
{
    return "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"" PROTOCOL_VERSION "\",\"capabilities\":{},"
           "\"clientInfo\":{\"name\":\"stdio_load\",\"version\":\"1.0\"}}}\n";
}

/* Sends initialize and waits for its response; with list, then notifications/initialized and
 * tools/list, and waits for that answer too (what a client sees before it can offer tools).
 * *elapsed_ns is spawn-relative when t0 is the spawn time. Returns RUN_OK, RUN_WRONG (bad
 * answer) or RUN_FAILED. */
static int handshake(struct server *s, struct rbuf *rb, uint64_t t0, double stall_s, bool list,
                     uint64_t *elapsed_ns /* OUT */)
{
    static const char list_request[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n";
    struct wbuf w = {0};
    size_t start = 0;
    int r = RUN_FAILED;
    uint64_t deadline = t0 + (uint64_t)(stall_s * 1e9);
    bool listing = false;

    wbuf_append(&w, init_request(), strlen(init_request()));
    for (;;) {
        if (wbuf_flush(&w, s->in_fd) != 0)
            goto out;
        size_t len;
        bool too_long = false;
        char *line = rbuf_line(rb, &start, &len, &too_long);
        if (line != NULL) {
            struct response resp;
            if (len == 0)
                continue;
            *elapsed_ns = now_ns() - t0;
            int sr = scan_response(line, len, &resp);
            if (sr == 0 && !resp.has_id)
                continue; /* a notification: allowed */
            if (listing) {
                if (sr != 0 || resp.id != 2 || !resp.has_result ||
                    memmem(line, len, "\"tools\"", 7) == NULL) {
                    fprintf(stderr, "stdio_load: tools/list failed: %.*s\n",
                            (int)(len > 300 ? 300 : len), line);
                    r = RUN_WRONG;
                    goto out;
                }
                rbuf_compact(rb, start);
                break;
            }
            if (sr != 0 || resp.id != INIT_ID) {
                fprintf(stderr, "stdio_load: unexpected line before initialize response: %.*s\n",
                        (int)(len > 300 ? 300 : len), line);
                r = RUN_WRONG;
                goto out;
            }
            if (!resp.has_result || memmem(line, len, "\"protocolVersion\"", 17) == NULL) {
                fprintf(stderr, "stdio_load: initialize failed: %.*s\n",
                        (int)(len > 300 ? 300 : len), line);
                r = RUN_WRONG;
                goto out;
            }
            if (list) {
                listing = true;
                wbuf_append(&w, list_request, strlen(list_request));
                continue;
            }
            rbuf_compact(rb, start);
            break;
        }
        if (too_long) {
            fprintf(stderr, "stdio_load: initialize response longer than %u bytes\n",
                    LINE_MAX_BYTES);
            r = RUN_WRONG;
            goto out;
        }
        uint64_t t = now_ns();
        if (t > deadline) {
            fprintf(stderr, "stdio_load: no initialize response within %.1fs\n", stall_s);
            goto out;
        }
        struct pollfd pfd[2] = {{s->out_fd, POLLIN, 0},
                                {s->in_fd, w.off < w.len ? POLLOUT : 0, 0}};
        int left_ms = (int)((deadline - t) / 1000000) + 1;
        if (poll(pfd, 2, left_ms) < 0 && errno != EINTR) {
            perror("stdio_load: poll");
            goto out;
        }
        if (pfd[0].revents != 0) {
            ssize_t n = rbuf_fill(rb, s->out_fd);
            if (n == 0) {
                fprintf(stderr, "stdio_load: server closed stdout before initialize response\n");
                goto out;
            }
            if (n == -1)
                goto out;
        }
    }
    r = RUN_OK;
out:
    free(w.data);
    return r;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[k] / 1e3;
}

struct cold_result {
    double median_ms, min_ms;
    int runs;
};

static int cold_starts(const struct opts *o, struct cold_result *cr /* OUT */)
{
    uint64_t *t = calloc((size_t)o->cold_runs + 1, sizeof(*t));
    int r = RUN_OK;

    memset(cr, 0, sizeof(*cr));
    for (int i = 0; i < o->cold_runs; i++) {
        struct server s;
        struct rbuf rb = {0};
        struct rusage ru;
        uint64_t t0 = now_ns();
        if (server_spawn(o, &s) != 0) {
            r = RUN_FAILED;
            break;
        }
        int hr = handshake(&s, &rb, t0, o->stall_s, o->cold_list, &t[cr->runs]);
        bool clean = server_reap(&s, 5.0, &ru);
        free(rb.data);
        if (hr != RUN_OK) {
            r = hr;
            break;
        }
        if (!clean)
            r = RUN_WRONG;
        cr->runs++;
    }
    if (cr->runs > 0) {
        qsort(t, (size_t)cr->runs, sizeof(*t), cmp_u64);
        cr->min_ms = (double)t[0] / 1e6;
        cr->median_ms = cr->runs % 2 ? (double)t[cr->runs / 2] / 1e6
                                     : ((double)t[cr->runs / 2 - 1] + (double)t[cr->runs / 2]) / 2e6;
    }
    free(t);
    return r;
}

struct load_result {
    long long sent, measured, errors;
    double seconds, rate, mean_us, p50_us, p99_us, max_us, max_gap_ms;
    long vmhwm_kib, maxrss_kib;
    bool clean_exit;
    const char *stopped_by;
};

static long long count_error(long long *errors, const char *what, const char *line, size_t len)
{
    if (*errors < 5)
        fprintf(stderr, "stdio_load: %s: %.*s\n", what, (int)(len > 300 ? 300 : len), line);
    return ++*errors;
}

static int load_run(const struct opts *o, struct load_result *lr /* OUT */)
{
    long long total = o->warmup + o->requests;
    uint64_t *sent_at = calloc((size_t)total, sizeof(*sent_at)); /* 0 = answered/unsent */
    uint64_t *lat = calloc((size_t)o->requests, sizeof(*lat));
    char *req = malloc(o->text_bytes + 512), *text = malloc(o->text_bytes + 64);
    size_t plen = strlen(o->prefix);
    char *want = malloc(o->text_bytes + 64 + plen);
    struct server s = {.pid = -1, .in_fd = -1, .out_fd = -1};
    struct rbuf rb = {0};
    struct wbuf w = {0};
    struct rusage ru;
    long long recv = 0, nlat = 0, inflight = 0;
    uint64_t t_measure = 0, t_last = 0, t_end_send = 0, last_progress;
    int r = RUN_FAILED;
    size_t start = 0;
    bool time_up = false, warm = o->warmup == 0;

    memset(lr, 0, sizeof(*lr));
    lr->stopped_by = "count";
    if (sent_at == NULL || lat == NULL || req == NULL || text == NULL || want == NULL) {
        fprintf(stderr, "stdio_load: out of memory\n");
        goto out;
    }
    uint64_t t0 = now_ns(), init_ns;
    if (server_spawn(o, &s) != 0)
        goto out;
    if ((r = handshake(&s, &rb, t0, o->stall_s, false, &init_ns)) != RUN_OK)
        goto out;
    r = RUN_FAILED;
    static const char initialized[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
    wbuf_append(&w, initialized, sizeof(initialized) - 1);
    start = 0;
    if (warm)
        t_measure = now_ns();
    last_progress = now_ns();

    for (;;) {
        /* Top the window up. Request k (0-based) has id k + 2. */
        uint64_t t = now_ns();
        if (warm && o->duration_s > 0 && !time_up &&
            t - t_measure >= (uint64_t)(o->duration_s * 1e9)) {
            time_up = true;
            lr->stopped_by = "time";
        }
        while (!time_up && lr->sent < total && inflight < o->window) {
            long long id = lr->sent + 2;
            size_t tl = make_text(text, o->text_bytes + 64, id, o->text_bytes);
            int n = snprintf(req, o->text_bytes + 512,
                             "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\","
                             "\"params\":{\"name\":\"%s\",\"arguments\":{\"%s\":\"%.*s\"}}}\n",
                             id, o->tool, o->arg, (int)tl, text);
            wbuf_append(&w, req, (size_t)n);
            sent_at[lr->sent++] = t;
            inflight++;
        }
        if (wbuf_flush(&w, s.in_fd) != 0)
            goto out;
        if (inflight == 0 && (time_up || lr->sent == total))
            break;

        struct pollfd pfd[2] = {{s.out_fd, POLLIN, 0}, {s.in_fd, w.off < w.len ? POLLOUT : 0, 0}};
        if (poll(pfd, 2, 100) < 0 && errno != EINTR) {
            perror("stdio_load: poll");
            goto out;
        }
        t = now_ns();
        if (pfd[0].revents == 0) {
            if (t - last_progress > (uint64_t)(o->stall_s * 1e9)) {
                fprintf(stderr,
                        "stdio_load: stall: no response for %.1fs with %lld requests in "
                        "flight (%lld answered)\n",
                        o->stall_s, inflight, recv);
                goto out;
            }
            continue;
        }
        ssize_t got = rbuf_fill(&rb, s.out_fd);
        if (got == 0) {
            fprintf(stderr, "stdio_load: server closed stdout with %lld requests in flight\n",
                    inflight);
            goto out;
        }
        if (got == -1)
            goto out;
        if (got == -2)
            continue;
        if (warm && inflight > 0 && t_last != 0 && t - t_last > 0 &&
            (double)(t - t_last) / 1e6 > lr->max_gap_ms)
            lr->max_gap_ms = (double)(t - t_last) / 1e6;
        t_last = t;
        last_progress = t;

        size_t len;
        bool too_long = false;
        char *line;
        while ((line = rbuf_line(&rb, &start, &len, &too_long)) != NULL) {
            struct response resp;
            if (len == 0)
                continue;
            if (scan_response(line, len, &resp) != 0) {
                count_error(&lr->errors, "not one JSON object", line, len);
                continue;
            }
            if (!resp.has_id)
                continue; /* a notification: allowed, not counted */
            long long k = resp.id - 2;
            if (k < 0 || k >= lr->sent || sent_at[k] == 0) {
                count_error(&lr->errors, "unknown or repeated id", line, len);
                continue;
            }
            uint64_t dt = t - sent_at[k];
            sent_at[k] = 0;
            inflight--;
            recv++;
            size_t tl = make_text(text, o->text_bytes + 64, resp.id, o->text_bytes);
            memcpy(want, o->prefix, plen);
            memcpy(want + plen, text, tl + 1);
            if (!resp.has_result || resp.has_error)
                count_error(&lr->errors, "error response", line, len);
            else if (!has_echo(line, len, want, tl + plen))
                count_error(&lr->errors, "echo text missing", line, len);
            if (k >= o->warmup) {
                lat[nlat++] = dt;
            }
            if (!warm && recv == o->warmup) {
                warm = true;
                t_measure = t;
            }
        }
        if (too_long) {
            count_error(&lr->errors, "response line too long", rb.data + start, 200);
            goto out;
        }
        rbuf_compact(&rb, start);
        start = 0;
    }
    t_end_send = t_last;
    lr->vmhwm_kib = read_vmhwm_kib(s.pid);
    lr->clean_exit = server_reap(&s, 5.0, &ru);
    lr->maxrss_kib = ru.ru_maxrss;
    if (!lr->clean_exit)
        lr->errors++;

    lr->measured = nlat;
    lr->seconds = t_end_send > t_measure ? (double)(t_end_send - t_measure) / 1e9 : 0;
    lr->rate = lr->seconds > 0 ? (double)nlat / lr->seconds : 0;
    if (nlat > 0) {
        double sum = 0;
        for (long long i = 0; i < nlat; i++)
            sum += (double)lat[i];
        lr->mean_us = sum / (double)nlat / 1e3;
        qsort(lat, (size_t)nlat, sizeof(*lat), cmp_u64);
        lr->p50_us = pct_us(lat, (size_t)nlat, 0.50);
        lr->p99_us = pct_us(lat, (size_t)nlat, 0.99);
        lr->max_us = (double)lat[nlat - 1] / 1e3;
    }
    r = lr->errors > 0 ? RUN_WRONG : RUN_OK;
out:
    if (s.pid >= 0) {
        if (lr->vmhwm_kib == 0)
            lr->vmhwm_kib = read_vmhwm_kib(s.pid);
        server_reap(&s, 2.0, &ru);
    }
    free(sent_at);
    free(lat);
    free(req);
    free(text);
    free(want);
    free(rb.data);
    free(w.data);
    return r;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct cold_result cr;
    struct load_result lr;

    if (parse_opts(argc, argv, &o) != 0) {
        usage();
        return RUN_FAILED;
    }
    signal(SIGPIPE, SIG_IGN);

    int rc = cold_starts(&o, &cr);
    if (rc == RUN_FAILED) {
        fprintf(stderr, "stdio_load: %s: cold start failed\n", o.label);
        return RUN_FAILED;
    }
    int lrc = load_run(&o, &lr);
    if (lrc > rc)
        rc = lrc;
    printf("label=%s rate_rps=%.0f mean_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f "
           "max_gap_ms=%.1f errors=%lld requests=%lld warmup=%lld window=%d seconds=%.3f "
           "stopped_by=%s cold_start_ms_median=%.2f cold_start_ms_min=%.2f cold_runs=%d "
           "peak_rss_kib=%ld maxrss_kib=%ld clean_exit=%d status=%s\n",
           o.label, lr.rate, lr.mean_us, lr.p50_us, lr.p99_us, lr.max_us, lr.max_gap_ms,
           lr.errors, lr.measured, o.warmup, o.window, lr.seconds, lr.stopped_by, cr.median_ms,
           cr.min_ms, cr.runs, lr.vmhwm_kib, lr.maxrss_kib, lr.clean_exit ? 1 : 0,
           rc == RUN_OK ? "ok" : rc == RUN_WRONG ? "wrong" : "failed");
    return rc;
}
