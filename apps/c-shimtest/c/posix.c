/* shimtest's posix family: ownership, permissions, credentials, named pipes, device nodes,
 * locks and space calls as a C program sees them through musl (issue 18). Runs as root
 * first, then drops to uid/gid 1000 and checks that the kernel now refuses what Linux
 * refuses. Works unmodified on Linux as root with a writable /tmp. */
#define _GNU_SOURCE
#include "check.h"
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <grp.h>
#include <sys/syscall.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* <linux/capability.h>, which musl's headers do not carry. */
struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective, permitted, inheritable; };
#define CAP_VERSION_3 0x20080522
#define CAP_DAC_OVERRIDE 1
#define CAP_SETUID 7

/* A path another thread keeps rewriting (valid UTF-8 one moment, a 0xff byte the next):
 * the kernel must copy it before use, never panic, and answer each call for some version. */
static char racing_path[] = "/tmp/px/race-a";
static volatile int racing = 1;
static void *flip_path(void *arg) {
    (void)arg;
    for (unsigned i = 0; racing; i++) racing_path[13] = (i & 1) ? (char)0xff : 'a';
    return NULL;
}

static void write_all(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text) && close(fd) == 0);
}

void posix_family(void) {
    struct stat st;
    char buf[64];
    CHECK(getuid() == 0 && geteuid() == 0 && getgid() == 0);
    mkdir("/tmp/px", 0755);
    CHECK(chmod("/tmp/px", 01777) == 0 && stat("/tmp/px", &st) == 0 && (st.st_mode & 07777) == 01777);
    write_all("/tmp/px/rootfile", "root");
    CHECK(chmod("/tmp/px/rootfile", 0600) == 0);
    CHECK(chown("/tmp/px/rootfile", 7, 8) == 0 && stat("/tmp/px/rootfile", &st) == 0 && st.st_uid == 7 && st.st_gid == 8);
    CHECK(chown("/tmp/px/rootfile", 0, 0) == 0);
    CHECK(access("/tmp/px/rootfile", R_OK | W_OK) == 0);
    FAILS(access("/tmp/px/rootfile", X_OK), EACCES);

    write_all("/tmp/px/race-a", "a");
    pthread_t flipper;
    CHECK(pthread_create(&flipper, NULL, flip_path, NULL) == 0);
    int seen_ok = 0, seen_other = 0;
    for (int i = 0; i < 3000; i++) {
        errno = 0;
        if (stat(racing_path, &st) == 0) seen_ok++;
        else {
            CHECK(errno == EINVAL || errno == ENOENT);
            seen_other++;
        }
        if (i % 100 == 0) sched_yield();
    }
    racing = 0;
    CHECK(pthread_join(flipper, NULL) == 0 && seen_ok + seen_other == 3000);

    /* An iovec array with a bad buffer fails with EFAULT before any byte moves; an
     * unaligned array is fine. */
    int iv = open("/tmp/px/race-a", O_RDONLY);
    char one[1], two[1];
    struct iovec bad[2] = {{one, 1}, {(void *)1, 1}};
    FAILS(readv(iv, bad, 2), EFAULT);
    CHECK(lseek(iv, 0, SEEK_CUR) == 0);
    char raw[sizeof(struct iovec) * 2 + 1];
    struct iovec good[2] = {{one, 1}, {two, 1}};
    memcpy(raw + 1, good, sizeof good);
    CHECK(readv(iv, (struct iovec *)(raw + 1), 2) == 1 && one[0] == 'a' && close(iv) == 0);

    /* A FIFO: O_RDWR never waits; data written comes back; fstat says FIFO. */
    CHECK(mkfifo("/tmp/px/fifo", 0666) == 0 && stat("/tmp/px/fifo", &st) == 0 && S_ISFIFO(st.st_mode));
    int both = open("/tmp/px/fifo", O_RDWR);
    CHECK(both >= 0 && fstat(both, &st) == 0 && S_ISFIFO(st.st_mode));
    FAILS(open("/tmp/px/nofifo", O_WRONLY | O_NONBLOCK), ENOENT);
    int reader = open("/tmp/px/fifo", O_RDONLY | O_NONBLOCK);
    int writer = open("/tmp/px/fifo", O_WRONLY | O_NONBLOCK);
    CHECK(reader >= 0 && writer >= 0 && write(writer, "via fifo", 8) == 8);
    CHECK(read(reader, buf, sizeof buf) == 8 && memcmp(buf, "via fifo", 8) == 0);
    close(reader);
    close(writer);
    close(both);
    /* Without a reader, a non-blocking writer cannot open. */
    FAILS(open("/tmp/px/fifo", O_WRONLY | O_NONBLOCK), ENXIO);

    /* Device nodes name devfs's devices by number; a socket name does not open. */
    CHECK(mknod("/tmp/px/null", S_IFCHR | 0666, makedev(1, 3)) == 0);
    int null = open("/tmp/px/null", O_RDWR);
    CHECK(null >= 0 && write(null, "gone", 4) == 4 && read(null, buf, 4) == 0 && close(null) == 0);
    CHECK(mknod("/tmp/px/nodev", S_IFCHR | 0666, makedev(240, 9)) == 0);
    FAILS(open("/tmp/px/nodev", O_RDONLY), ENXIO);
    CHECK(mknod("/tmp/px/sock", S_IFSOCK | 0666, 0) == 0);
    FAILS(open("/tmp/px/sock", O_RDONLY), ENXIO);

    /* flock: two open file descriptions of one file conflict; dup shares the lock. */
    write_all("/tmp/px/lock", "l");
    int a = open("/tmp/px/lock", O_RDWR), b = open("/tmp/px/lock", O_RDWR);
    CHECK(a >= 0 && b >= 0 && flock(a, LOCK_EX | LOCK_NB) == 0);
    FAILS(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    int a2 = dup(a);
    CHECK(flock(a2, LOCK_EX | LOCK_NB) == 0);
    close(a);
    close(a2);
    CHECK(flock(b, LOCK_SH | LOCK_NB) == 0 && close(b) == 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int ro = open("/tmp/px/lock", O_RDONLY);
    FAILS(fcntl(ro, F_SETLK, &fl), EBADF);
    CHECK(fcntl(ro, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK && close(ro) == 0);

    /* fallocate grows the file (reads zeros); a hole punched reads zeros; copy_file_range.
     * ext2 has no fallocate, on libos as on Linux (EOPNOTSUPP): there the hole is written. */
    int sp = open("/tmp/px/space", O_RDWR | O_CREAT, 0644);
    CHECK(sp >= 0);
    struct statfs space_fs;
    CHECK(fstatfs(sp, &space_fs) == 0);
    if (space_fs.f_type == 0xEF53) {
        FAILS(fallocate(sp, 0, 0, 10000), EOPNOTSUPP);
        CHECK(ftruncate(sp, 10000) == 0 && pwrite(sp, "ab\0\0efgh", 8, 4096) == 8);
    } else {
        CHECK(fallocate(sp, 0, 0, 10000) == 0 && fstat(sp, &st) == 0 && st.st_size == 10000);
        CHECK(pwrite(sp, "abcdefgh", 8, 4096) == 8);
        CHECK(fallocate(sp, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4098, 2) == 0);
    }
    CHECK(pread(sp, buf, 8, 4096) == 8 && memcmp(buf, "ab\0\0efgh", 8) == 0);
    int copy = open("/tmp/px/copy", O_RDWR | O_CREAT, 0644);
    loff_t from = 4096;
    CHECK(copy >= 0 && copy_file_range(sp, &from, copy, NULL, 8, 0) == 8 && from == 4104);
    CHECK(pread(copy, buf, 8, 0) == 8 && memcmp(buf, "ab\0\0efgh", 8) == 0);
    close(sp);
    close(copy);

    /* Capabilities: root has them all. */
    struct cap_header header = {CAP_VERSION_3, 0};
    struct cap_data caps[2];
    CHECK(syscall(SYS_capget, &header, caps) == 0 && (caps[0].effective & (1u << CAP_DAC_OVERRIDE)) && (caps[0].permitted & (1u << CAP_SETUID)));

    /* *at calls start at the open directory itself: after a rename they still reach its
     * entries, after its removal they fail with ENOENT; a file descriptor is ENOTDIR. */
    CHECK(mkdir("/tmp/px/d1", 0755) == 0);
    int dir = open("/tmp/px/d1", O_RDONLY | O_DIRECTORY);
    CHECK(dir >= 0);
    int made = openat(dir, "inner", O_CREAT | O_WRONLY, 0644);
    CHECK(made >= 0 && write(made, "in", 2) == 2);
    close(made);
    CHECK(rename("/tmp/px/d1", "/tmp/px/d2") == 0);
    CHECK(fstatat(dir, "inner", &st, 0) == 0 && st.st_size == 2);
    FAILS(stat("/tmp/px/d1/inner", &st), ENOENT);
    CHECK(mkdirat(dir, "sub", 0755) == 0 && stat("/tmp/px/d2/sub", &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(renameat(dir, "inner", dir, "sub/moved") == 0 && stat("/tmp/px/d2/sub/moved", &st) == 0);
    CHECK(symlinkat("sub/moved", dir, "link") == 0 && readlinkat(dir, "link", buf, sizeof buf) == 9);
    CHECK(fchmodat(dir, "sub/moved", 0600, 0) == 0 && fstatat(dir, "link", &st, 0) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(faccessat(dir, "sub/moved", R_OK | W_OK, 0) == 0 && fchownat(dir, "link", 5, 6, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(fstatat(dir, "link", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == 5 && S_ISLNK(st.st_mode));
    CHECK(linkat(dir, "sub/moved", dir, "hard", 0) == 0 && fstatat(dir, "hard", &st, 0) == 0 && st.st_nlink == 2);
    CHECK(mknodat(dir, "fifo", S_IFIFO | 0600, 0) == 0 && fstatat(dir, "fifo", &st, 0) == 0 && S_ISFIFO(st.st_mode));
    CHECK(unlinkat(dir, "fifo", 0) == 0 && unlinkat(dir, "hard", 0) == 0 && unlinkat(dir, "link", 0) == 0);
    CHECK(unlinkat(dir, "sub/moved", 0) == 0 && unlinkat(dir, "sub", AT_REMOVEDIR) == 0);
    int not_dir = open("/tmp/px/rootfile", O_RDONLY);
    FAILS(openat(not_dir, "x", O_RDONLY), ENOTDIR);
    CHECK(fstatat(not_dir, "/tmp/px", &st, 0) == 0); /* absolute paths ignore dirfd */
    FAILS(fstatat(12345, "x", &st, 0), EBADF);
    close(not_dir);
    /* fchdir: the open directory becomes the current one, wherever it was moved. */
    char cwd[64];
    CHECK(fchdir(dir) == 0 && getcwd(cwd, sizeof cwd) && !strcmp(cwd, "/tmp/px/d2"));
    CHECK(mkdir("rel", 0755) == 0 && stat("/tmp/px/d2/rel", &st) == 0 && rmdir("rel") == 0);
    int file_fd = open("/tmp/px/rootfile", O_RDONLY);
    FAILS(fchdir(file_fd), ENOTDIR);
    FAILS(fchdir(12345), EBADF);
    close(file_fd);
    CHECK(chdir("/") == 0);
    CHECK(rmdir("/tmp/px/d2") == 0);
    FAILS(openat(dir, "late", O_CREAT | O_WRONLY, 0644), ENOENT); /* a removed directory takes no entries */
    close(dir);

    /* O_PATH: a handle for walks and fstat, not for contents. */
    CHECK(symlink("rootfile", "/tmp/px/plink") == 0);
    int pl = open("/tmp/px/plink", O_PATH | O_NOFOLLOW);
    CHECK(pl >= 0 && fstat(pl, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK((fcntl(pl, F_GETFL) & O_PATH) == O_PATH);
    FAILS(read(pl, buf, 1), EBADF);
    /* The raw call: musl's fchmod() retries an EBADF through /proc/self/fd, which libos lacks. */
    FAILS(syscall(SYS_fchmod, pl, 0600), EBADF);
    FAILS(lseek(pl, 0, SEEK_SET), EBADF);
    FAILS(fsync(pl), EBADF);
    FAILS(flock(pl, LOCK_EX), EBADF);
    close(pl);
    int pd = open("/tmp/px", O_PATH | O_DIRECTORY);
    CHECK(pd >= 0 && fstatat(pd, "rootfile", &st, 0) == 0 && S_ISREG(st.st_mode));
    FAILS(syscall(SYS_getdents64, pd, buf, sizeof buf), EBADF);
    FAILS(open("/tmp/px/rootfile", O_PATH | O_DIRECTORY), ENOTDIR);
    close(pd);
    CHECK(unlink("/tmp/px/plink") == 0);

    /* renameat2: RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE swaps two
     * names (both must exist; not with RENAME_NOREPLACE). */
    write_all("/tmp/px/rn-a", "a");
    write_all("/tmp/px/rn-b", "b");
    /* musl 1.2.3 has no renameat2() wrapper: the raw call, with Linux's flag values. */
    const long noreplace = 1, exchange = 2;
    FAILS(syscall(SYS_renameat2, AT_FDCWD, "/tmp/px/rn-a", AT_FDCWD, "/tmp/px/rn-b", noreplace), EEXIST);
    CHECK(stat("/tmp/px/rn-a", &st) == 0 && stat("/tmp/px/rn-b", &st) == 0 && st.st_size == 1);
    CHECK(syscall(SYS_renameat2, AT_FDCWD, "/tmp/px/rn-a", AT_FDCWD, "/tmp/px/rn-c", noreplace) == 0);
    FAILS(stat("/tmp/px/rn-a", &st), ENOENT);
    CHECK(syscall(SYS_renameat2, AT_FDCWD, "/tmp/px/rn-c", AT_FDCWD, "/tmp/px/rn-b", exchange) == 0);
    char swapped_byte = 0;
    int swapped = open("/tmp/px/rn-c", O_RDONLY);
    CHECK(swapped >= 0 && read(swapped, &swapped_byte, 1) == 1 && swapped_byte == 'b');
    close(swapped);
    FAILS(syscall(SYS_renameat2, AT_FDCWD, "/tmp/px/rn-c", AT_FDCWD, "/tmp/px/rn-none", exchange), ENOENT);
    FAILS(syscall(SYS_renameat2, AT_FDCWD, "/tmp/px/rn-c", AT_FDCWD, "/tmp/px/rn-b", exchange | noreplace), EINVAL);
    CHECK(unlink("/tmp/px/rn-b") == 0 && unlink("/tmp/px/rn-c") == 0);

    /* linkat: a symlink itself, or with AT_SYMLINK_FOLLOW what it points to; AT_EMPTY_PATH and
     * /proc/self/fd/N give an open file another name, unless it was removed (ENOENT). */
    write_all("/tmp/px/lk-file", "k");
    CHECK(symlink("lk-file", "/tmp/px/lk-sym") == 0);
    CHECK(linkat(AT_FDCWD, "/tmp/px/lk-sym", AT_FDCWD, "/tmp/px/lk-nofollow", 0) == 0);
    CHECK(lstat("/tmp/px/lk-nofollow", &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(linkat(AT_FDCWD, "/tmp/px/lk-sym", AT_FDCWD, "/tmp/px/lk-follow", AT_SYMLINK_FOLLOW) == 0);
    CHECK(lstat("/tmp/px/lk-follow", &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 2);
    int lk = open("/tmp/px/lk-file", O_RDONLY);
    CHECK(lk >= 0);
    CHECK(linkat(lk, "", AT_FDCWD, "/tmp/px/lk-empty", AT_EMPTY_PATH) == 0);
    char lk_proc[64];
    snprintf(lk_proc, sizeof lk_proc, "/proc/self/fd/%d", lk);
    CHECK(linkat(AT_FDCWD, lk_proc, AT_FDCWD, "/tmp/px/lk-proc", AT_SYMLINK_FOLLOW) == 0);
    CHECK(stat("/tmp/px/lk-proc", &st) == 0 && st.st_nlink == 4);
    FAILS(linkat(AT_FDCWD, "/tmp/px", AT_FDCWD, "/tmp/px/lk-dir", AT_SYMLINK_FOLLOW), EPERM);
    const char *lk_names[] = {"/tmp/px/lk-file", "/tmp/px/lk-follow", "/tmp/px/lk-empty", "/tmp/px/lk-proc"};
    for (int i = 0; i < 4; i++) CHECK(unlink(lk_names[i]) == 0);
    FAILS(linkat(lk, "", AT_FDCWD, "/tmp/px/lk-again", AT_EMPTY_PATH), ENOENT);
    FAILS(linkat(AT_FDCWD, lk_proc, AT_FDCWD, "/tmp/px/lk-again", AT_SYMLINK_FOLLOW), ENOENT);
    close(lk);
    CHECK(unlink("/tmp/px/lk-sym") == 0 && unlink("/tmp/px/lk-nofollow") == 0);

    /* O_TMPFILE: an unnamed file, named later through /proc/self/fd (never with O_EXCL).
     * virtio-fs (FUSE) answers EOPNOTSUPP, as for a Linux guest: virtiofsd 1.14 has no
     * FUSE_TMPFILE. */
    struct statfs px_fs;
    CHECK(statfs("/tmp/px", &px_fs) == 0);
    int tmp = open("/tmp/px", O_TMPFILE | O_RDWR, 0600);
    if (px_fs.f_type == 0x65735546) { /* FUSE_SUPER_MAGIC */
        CHECK(tmp == -1 && errno == EOPNOTSUPP);
    } else {
        CHECK(tmp >= 0 && write(tmp, "tmp", 3) == 3);
        CHECK(fstat(tmp, &st) == 0 && st.st_nlink == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
        snprintf(lk_proc, sizeof lk_proc, "/proc/self/fd/%d", tmp);
        CHECK(linkat(AT_FDCWD, lk_proc, AT_FDCWD, "/tmp/px/tmp-named", AT_SYMLINK_FOLLOW) == 0);
        CHECK(stat("/tmp/px/tmp-named", &st) == 0 && st.st_nlink == 1 && st.st_size == 3);
        close(tmp);
        CHECK(unlink("/tmp/px/tmp-named") == 0);
        tmp = open("/tmp/px", O_TMPFILE | O_WRONLY | O_EXCL, 0600);
        CHECK(tmp >= 0 && write(tmp, "x", 1) == 1);
        FAILS(linkat(tmp, "", AT_FDCWD, "/tmp/px/tmp-excl", AT_EMPTY_PATH), ENOENT);
        close(tmp);
        FAILS(open("/tmp/px", O_TMPFILE | O_RDONLY, 0600), EINVAL);
        FAILS(open("/tmp/px/rootfile", O_TMPFILE | O_RDWR, 0600), ENOTDIR);
    }

    /* fstatfs, sync, syncfs and fadvise (extended attributes: xattr.c). */
    struct statfs by_path, by_fd;
    int some = open("/tmp/px/rootfile", O_RDONLY);
    CHECK(some >= 0 && statfs("/tmp/px/rootfile", &by_path) == 0 && fstatfs(some, &by_fd) == 0);
    CHECK(by_fd.f_type == by_path.f_type && by_fd.f_bsize == by_path.f_bsize && by_fd.f_blocks == by_path.f_blocks);
    int ends[2];
    CHECK(pipe(ends) == 0 && fstatfs(ends[0], &by_fd) == 0 && by_fd.f_type == 0x50495045); /* PIPEFS_MAGIC */
    FAILS(fstatfs(12345, &by_fd), EBADF);
    sync();
    CHECK(syncfs(some) == 0);
    CHECK(posix_fadvise(some, 0, 0, POSIX_FADV_SEQUENTIAL) == 0 && posix_fadvise(some, 0, 0, 99) == EINVAL);
    CHECK(posix_fadvise(ends[0], 0, 0, POSIX_FADV_NORMAL) == ESPIPE && posix_fadvise(12345, 0, 0, 0) == EBADF);
    close(ends[0]);
    close(ends[1]);
    close(some);

    /* Drop to an unprivileged user: the kernel now checks like Linux does. */
    gid_t groups[] = {50};
    CHECK(setgroups(1, groups) == 0 && setgid(1000) == 0 && setuid(1000) == 0);
    CHECK(getuid() == 1000 && geteuid() == 1000 && getgid() == 1000 && getgroups(0, NULL) == 1);
    FAILS(setuid(0), EPERM);
    FAILS(open("/tmp/px/rootfile", O_RDONLY), EACCES);
    /* O_PATH needs no permission on the file itself, and reads nothing through it. */
    int handle = open("/tmp/px/rootfile", O_PATH);
    CHECK(handle >= 0 && fstat(handle, &st) == 0 && st.st_uid == 0);
    FAILS(read(handle, buf, 1), EBADF);
    close(handle);
    FAILS(access("/tmp/px/rootfile", R_OK), EACCES);
    FAILS(chmod("/tmp/px/rootfile", 0777), EPERM);
    FAILS(chown("/tmp/px/lock", 1000, 1000), EPERM);
    FAILS(unlink("/tmp/px/rootfile"), EPERM); /* sticky directory, someone else's file */
    FAILS(mknod("/tmp/px/tty", S_IFCHR | 0600, makedev(5, 0)), EPERM);
    FAILS(mkdir("/root/x", 0755), EACCES);
    write_all("/tmp/px/mine", "mine");
    CHECK(stat("/tmp/px/mine", &st) == 0 && st.st_uid == 1000 && st.st_gid == 1000);
    CHECK(chown("/tmp/px/mine", -1, 50) == 0 && stat("/tmp/px/mine", &st) == 0 && st.st_gid == 50);
    CHECK(chmod("/tmp/px/mine", 04755) == 0 && unlink("/tmp/px/mine") == 0);
    CHECK(syscall(SYS_capget, &header, caps) == 0 && caps[0].effective == 0 && caps[0].permitted == 0);

    /* Left for exit to release, as Linux's exit does: a file unlinked while open and one
     * unlinked while mapped shared. On a disk root the host's e2fsck afterwards finds no
     * orphan inode only if exit closed and unmapped them before the file systems' last sync. */
    int orphan = open("/tmp/px/orphan-open", O_RDWR | O_CREAT, 0600);
    CHECK(orphan >= 0 && write(orphan, "kept until exit", 15) == 15 && unlink("/tmp/px/orphan-open") == 0);
    int mapped = open("/tmp/px/orphan-mapped", O_RDWR | O_CREAT, 0600);
    CHECK(mapped >= 0 && ftruncate(mapped, 4096) == 0);
    char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mapped, 0);
    CHECK(shared != MAP_FAILED && close(mapped) == 0 && unlink("/tmp/px/orphan-mapped") == 0);
    shared[0] = 'x';
    printf("ok posix\n");
}
