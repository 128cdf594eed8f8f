/*
 * What the two reference servers (baseline_epoll.c, baseline_uring.c) share
 * and must keep identical for their figures to be comparable: the command
 * line, the HTTP response and how requests are counted. Header-only so each
 * server stays one program that does not link weft.
 */
#ifndef WEFT_BASELINE_COMMON_H
#define WEFT_BASELINE_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define RESPONSE_COPIES 1024

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";
#define RESPONSE_LEN (sizeof(response) - 1)

/* RESPONSE_COPIES responses back to back; read-only once main() fills it,
 * so pipelined requests are answered from one buffer in one write. */
static char responses[RESPONSE_COPIES * RESPONSE_LEN];

enum mode { MODE_ECHO, MODE_HTTP };

static void fill_responses(void)
{
    for (int i = 0; i < RESPONSE_COPIES; i++)
        memcpy(responses + i * RESPONSE_LEN, response, RESPONSE_LEN);
}

/* `echo|http PORT`: 0, or -EINVAL. */
static int parse_args(int argc, char **argv, enum mode *mode, int *port)
{
    char *end;
    long p;

    if (argc != 3)
        return -EINVAL;
    if (strcmp(argv[1], "echo") == 0)
        *mode = MODE_ECHO;
    else if (strcmp(argv[1], "http") == 0)
        *mode = MODE_HTTP;
    else
        return -EINVAL;
    p = strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || p < 1 || p > 65535)
        return -EINVAL;
    *port = p;
    return 0;
}

/* 500 connections need more fds than some default soft limits allow. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Counts the complete header blocks in in[0, *len) and keeps what follows
 * the last one. */
static uint64_t take_requests(char *in, size_t *len)
{
    char *p = in, *end = in + *len, *hit;
    uint64_t n = 0;

    while ((hit = memmem(p, end - p, "\r\n\r\n", 4))) {
        p = hit + 4;
        n++;
    }
    *len = end - p;
    memmove(in, p, *len);
    return n;
}

#endif
