/* The checks of shimtest's C files: every failed check prints its line and exits 1. */
#ifndef SHIMTEST_CHECK_H
#define SHIMTEST_CHECK_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("FAIL %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno,     \
                   strerror(errno));                                                       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)
/* A call that must fail with `err`. */
#define FAILS(call, err) CHECK((errno = 0, (call) == -1 && errno == (err)))

/* net.c: runs the socket family named `f` (unix, net, netpeer=PORT, netserve=PORT,N,
 * resolve=NAME,IP); 0 if
 * `f` names none. */
int socket_family(const char *f);
/* posix.c: ownership, permissions, credentials, FIFOs, device nodes, locks. */
void posix_family(void);
/* procfs.c: /proc/self, /proc/self/fd, /dev/std*; 0 if `f` is not "procfs". */
int procfs_family_run(const char *f);
/* mounts.c: mount(2), umount2(2), ETXTBSY in /tmp (needs execve); 0 if `f` is not "mounts". */
int mounts_family_run(const char *f);
/* xattr.c: extended attributes in /tmp (root, briefly uid 1000); 0 if `f` is not "xattr". */
int xattr_family_run(const char *f);
/* random.c: random (an entropy source is there), random-unseeded (none is); 0 if `f` names
 * neither. */
int random_family(const char *f);
/* memory.c: memory, memory-exit (bad pointers, read-only memory, shared mappings); 0 if `f`
 * names neither. */
int memory_family_run(const char *f);
/* smp.c: smp=N (C threads on N CPUs, affinity calls), smp-mprotect, smp-exits=N, smp-files=DIR; 0 if `f`
 * is none of them. */
int smp_family_run(const char *f);
/* smp_files.c: smp-files=DIR (file operations from threads on every CPU at once); 0 if `f` is
 * not that family. */
int smp_files_family_run(const char *f);
/* disk.c: the disk family (/dev/vda read-write, /dev/vdb read-only). */
void disk_family(void);
/* disk.c: the ext2 families (a volume mounted at /data). */
void ext2_family(void);
void ext2_sync_family(void);
void ext2_full_family(void);
void ext2_ro_family(void);
void ext2_walk_family(void);
#endif
