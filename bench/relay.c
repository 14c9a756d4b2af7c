/* relay: the floor for anything that sits between an MCP client and a stdio server. It starts
 * COMMAND with pipes and copies bytes both ways with one thread and poll(2), parsing nothing.
 * bench/gateway.sh measures it next to the gateway: what a process in between costs at the
 * least on this machine.
 *
 *   relay [-2] COMMAND [ARG...]
 *
 * -2: two threads, one per direction, each blocked in read(2): the shape of a server whose
 * transport reads on one thread and whose child's answers are read on another (mcpgate's
 * gateway). Exits when either side closes; status 2 when COMMAND cannot start. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int copy(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0)
        return -1;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

struct pair {
    int from, to;
};

static void *copy_all(void *arg)
{
    struct pair *p = arg;
    while (copy(p->from, p->to) == 0)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    int two = argc > 1 && strcmp(argv[1], "-2") == 0;
    argv += two;
    argc -= two;
    if (argc < 2) {
        fprintf(stderr, "usage: relay [-2] COMMAND [ARG...]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) {
        perror("relay: pipe");
        return 2;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[1], &fa, NULL, argv + 1, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        fprintf(stderr, "relay: cannot start %s: %s\n", argv[1], strerror(e));
        return 2;
    }
    close(in[0]);
    close(out[1]);
    if (two) {
        struct pair up = {0, in[1]}, down = {out[0], 1};
        pthread_t t;
        if (pthread_create(&t, NULL, copy_all, &down) != 0)
            return 2;
        copy_all(&up);
        close(in[1]);
        pthread_join(t, NULL);
        close(out[0]);
        waitpid(pid, NULL, 0);
        return 0;
    }
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = out[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents != 0 && copy(0, in[1]) != 0)
            break;
        if (p[1].revents != 0 && copy(out[0], 1) != 0)
            break;
    }
    close(in[1]); /* the MCP way to stop a stdio server */
    close(out[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return 0;
}
