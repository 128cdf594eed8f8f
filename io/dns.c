/*
 * Name resolution: getaddrinfo on the blocking pool (as libuv and Tokio do;
 * the C library's resolver blocks, and an asynchronous one would be a
 * dependency of its own), as jobs of the pool's slow class: lookups that
 * wait on a DNS server may hold at most half the pool (blocking.h).
 *
 * EAI_* codes become negative errno values, following the rule that every
 * weft call fails with -errno; weft.h lists the mapping.
 */
#include "dns.h"

#include <errno.h>
#include <netdb.h>
#include <stddef.h>

#include "../runtime/blocking.h"
#include "../runtime/common.h"
#include "weft.h"

struct resolve_job {
    const char *host, *service;
    const struct addrinfo *hints;
    struct addrinfo *res;
};

int weft__dns_errno(int eai, int sys_errno)
{
    switch (eai) {
    case 0: return 0;
    case EAI_NONAME: return -ENOENT;
    case EAI_NODATA: return -ENODATA;
    case EAI_ADDRFAMILY: return -EADDRNOTAVAIL;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_FAIL: return -EIO;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    case EAI_SOCKTYPE: return -ESOCKTNOSUPPORT;
    case EAI_SERVICE: return -EPROTONOSUPPORT;
    case EAI_BADFLAGS: return -EINVAL;
    case EAI_OVERFLOW: return -ENAMETOOLONG;
    case EAI_SYSTEM: return sys_errno > 0 ? -sys_errno : -EIO;
    default: return -EIO;
    }
}

/* Runs on a pool thread; errno is read there, where getaddrinfo set it. */
static int run_getaddrinfo(void *arg)
{
    struct resolve_job *j = arg;
    int eai = getaddrinfo(j->host, j->service, j->hints, &j->res);

    return weft__dns_errno(eai, errno);
}

int weft_resolve(const char *host, const char *service,
                 const struct addrinfo *hints, struct addrinfo **out)
{
    struct resolve_job j = { .host = host, .service = service,
                             .hints = hints };
    int ret;

    if (!out)
        return -EINVAL;
    /* NULL on every failure: freeing *out afterwards is always safe. */
    *out = NULL;
    if (!host && !service)
        return -EINVAL;
    ret = weft__blocking_call(run_getaddrinfo, &j, WEFT__JOB_SLOW,
                              WEFT__WHERE);
    if (ret == 0)
        *out = j.res;
    return ret;
}

void weft_resolve_free(struct addrinfo *res)
{
    if (res)
        freeaddrinfo(res);
}
