/*
 * Name resolution (weft_resolve) and the one EAI_* to errno mapping that
 * every caller of getaddrinfo in weft uses (weft.h lists it).
 */
#ifndef WEFT__IO_DNS_H
#define WEFT__IO_DNS_H

/* 0 for 0, else the negative errno standing for getaddrinfo's code eai;
 * sys_errno is errno as getaddrinfo left it (for EAI_SYSTEM). */
int weft__dns_errno(int eai, int sys_errno);

#endif
