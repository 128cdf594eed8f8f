/*
 * Symbolizing code addresses; see symbol.h.
 */
#include "symbol.h"

#include <dlfcn.h>
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* Whether [off, off + size) of a file of len bytes is inside it. */
static int in_file(uint64_t off, uint64_t size, size_t len)
{
    return off <= len && size <= len - off;
}

/*
 * The function of the file's symbol table (.symtab, else .dynsym) that
 * contains value; copies its name into name. 0 on success.
 */
static int lookup_symtab(const char *map, size_t len, uint64_t value,
                         char *name, size_t name_len, uint64_t *start)
{
    const Elf64_Ehdr *eh = (const void *)map;
    const Elf64_Shdr *sh;
    uint64_t best = 0;
    const char *best_name = NULL;

    if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(*sh), len))
        return -1;
    sh = (const void *)(map + eh->e_shoff);
    for (int want = SHT_SYMTAB; want; want = want == SHT_SYMTAB ? SHT_DYNSYM : 0) {
        for (unsigned i = 0; i < eh->e_shnum; i++) {
            const Elf64_Shdr *strs;
            const Elf64_Sym *syms;

            if (sh[i].sh_type != (unsigned)want || sh[i].sh_link >= eh->e_shnum ||
                !in_file(sh[i].sh_offset, sh[i].sh_size, len))
                continue;
            strs = &sh[sh[i].sh_link];
            if (!in_file(strs->sh_offset, strs->sh_size, len))
                continue;
            syms = (const void *)(map + sh[i].sh_offset);
            for (size_t k = 0; k < sh[i].sh_size / sizeof(*syms); k++) {
                const Elf64_Sym *y = &syms[k];

                if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || !y->st_value ||
                    y->st_value > value || y->st_name >= strs->sh_size)
                    continue;
                if (value >= y->st_value + (y->st_size ? y->st_size : 1))
                    continue;
                if (y->st_value >= best) {
                    best = y->st_value;
                    best_name = map + strs->sh_offset + y->st_name;
                }
            }
        }
        if (best_name) {
            /* Bounded by the end of the mapping: a file whose string
             * table lacks its terminator is not read past. */
            size_t room = (size_t)(map + len - best_name);

            snprintf(name, name_len, "%.*s",
                     (int)(room < name_len ? room : name_len), best_name);
            *start = best;
            return 0;
        }
    }
    return -1;
}

/* Looks value up in the symbol table of the file at path. */
static int lookup_file(const char *path, uint64_t value, char *name,
                       size_t name_len, uint64_t *start)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), ret = -1;
    struct stat st;
    void *map;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map != MAP_FAILED) {
            ret = lookup_symtab(map, (size_t)st.st_size, value, name,
                                name_len, start);
            munmap(map, (size_t)st.st_size);
        }
    }
    close(fd);
    return ret;
}

/* Whether the file at path is a fixed-address executable. */
static int is_fixed(const char *path)
{
    Elf64_Ehdr eh;
    int fd = open(path, O_RDONLY | O_CLOEXEC), fixed = 0;

    if (fd < 0)
        return 0;
    if (read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh))
        fixed = eh.e_type == ET_EXEC;
    close(fd);
    return fixed;
}

void weft__symbolize(const void *addr, char *buf, size_t len)
{
    Dl_info info;
    char name[256];
    uint64_t value, start;

    if (!len)
        return;
    if (!dladdr(addr, &info) || !info.dli_fname) {
        snprintf(buf, len, "%p", addr);
        return;
    }
    if (info.dli_sname && info.dli_saddr) {
        snprintf(buf, len, "%s+0x%zx (%s)", info.dli_sname,
                 (size_t)((const char *)addr - (const char *)info.dli_saddr),
                 base_name(info.dli_fname));
        return;
    }
    /* A position-independent file's symbols are offsets from where it
     * was loaded; a fixed-address one's are addresses. */
    value = (uint64_t)(uintptr_t)addr;
    if (!is_fixed(info.dli_fname))
        value -= (uint64_t)(uintptr_t)info.dli_fbase;
    /* The main program may be named as it was started (relative to a
     * directory since left, or not at all): its own file is at hand. */
    if (lookup_file(info.dli_fname, value, name, sizeof(name), &start) == 0 ||
        ((!*info.dli_fname ||
          !strcmp(info.dli_fname, program_invocation_name)) &&
         lookup_file("/proc/self/exe", value, name, sizeof(name),
                     &start) == 0))
        snprintf(buf, len, "%s+0x%llx (%s)", name,
                 (unsigned long long)(value - start),
                 base_name(info.dli_fname));
    else
        snprintf(buf, len, "%s+0x%llx", base_name(info.dli_fname),
                 (unsigned long long)value);
}
