/* shimtest's procfs family: /proc/self, /proc/self/fd and /dev/std* as programs use them
 * (issue 18). Works unmodified on Linux with a writable /tmp. */
#define _GNU_SOURCE
#include "check.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file's contents (at most size - 1 bytes, NUL-terminated); its length. */
static size_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    size_t n = 0;
    ssize_t r;
    while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)r;
    CHECK(r >= 0);
    buf[n] = 0;
    close(fd);
    return n;
}

static void read_link(const char *path, char *buf, size_t size) {
    ssize_t n = readlink(path, buf, size - 1);
    CHECK(n >= 0);
    buf[n] = 0;
}

static void link_is(const char *path, const char *want) {
    char buf[PATH_MAX];
    read_link(path, buf, sizeof buf);
    if (strcmp(buf, want)) {
        printf("FAIL readlink %s: '%s', not '%s'\n", path, buf, want);
        exit(1);
    }
}

/* The permissions ("rw-p") of the /proc/self/maps line covering addr, or "" for none. */
static const char *maps_perms(uintptr_t addr, char *name, size_t name_size) {
    static char perms[5];
    static char maps[65536];
    read_file("/proc/self/maps", maps, sizeof maps);
    perms[0] = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        uintptr_t from, to;
        int end = 0;
        char p[5];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %*x %*x:%*x %*u%n", &from, &to, p, &end) < 3) continue;
        if (from <= addr && addr < to) {
            memcpy(perms, p, 5);
            if (name) {
                while (line[end] == ' ') end++;
                snprintf(name, name_size, "%s", line + end);
            }
            break;
        }
    }
    return perms;
}

static void on_usr2(int sig) { (void)sig; }

static void process_files(void) {
    char path[64], want[PATH_MAX], buf[8192];
    snprintf(want, sizeof want, "%d", getpid());
    link_is("/proc/self", want);
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d/fd", getpid());
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    /* exe: the program's file; comm: its name. */
    char exe[PATH_MAX];
    read_link("/proc/self/exe", exe, sizeof exe);
    CHECK(exe[0] == '/');
    if (stat(exe, &st) == 0) {
        CHECK(S_ISREG(st.st_mode));
    } else {
        /* The program linked into a libos image has no file: exe shows its name. */
        CHECK(errno == ENOENT && !strcmp(exe + 1, program_invocation_short_name));
    }
    char comm[32], name[16];
    read_file("/proc/self/comm", comm, sizeof comm);
    snprintf(name, sizeof name, "%s", strrchr(exe, '/') + 1);
    CHECK(strlen(comm) == strlen(name) + 1 && !strncmp(comm, name, strlen(name)) && comm[strlen(name)] == '\n');
    CHECK(chdir("/tmp") == 0);
    link_is("/proc/self/cwd", "/tmp");
    link_is("/proc/self/root", "/");
    CHECK(chdir("/") == 0);
    /* cmdline: the arguments, NUL-terminated. */
    size_t n = read_file("/proc/self/cmdline", buf, sizeof buf);
    CHECK(n > strlen(program_invocation_name) && !strcmp(buf, program_invocation_name));
    CHECK(buf[n - 1] == 0);
    /* status and stat: ids, signal sets, threads. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &usr1, NULL) == 0);
    signal(SIGUSR2, on_usr2);
    signal(SIGPIPE, SIG_IGN);
    read_file("/proc/self/status", buf, sizeof buf);
    char line[128];
    snprintf(line, sizeof line, "\nPid:\t%d\n", getpid());
    CHECK(strstr(buf, line) != NULL);
    snprintf(line, sizeof line, "\nPPid:\t%d\n", getppid());
    CHECK(strstr(buf, line) != NULL);
    snprintf(line, sizeof line, "\nUid:\t%d\t%d\t%d\t%d\n", getuid(), geteuid(), geteuid(), geteuid());
    CHECK(strstr(buf, line) != NULL);
    snprintf(line, sizeof line, "Name:\t%s\n", name);
    CHECK(!strncmp(buf, line, strlen(line)));
    unsigned long long blocked = 0, caught = 0, ignored = 0;
    char *at = strstr(buf, "\nSigBlk:");
    CHECK(at && sscanf(at, "\nSigBlk:\t%llx", &blocked) == 1 && (blocked & (1ull << (SIGUSR1 - 1))));
    CHECK((at = strstr(buf, "\nSigCgt:")) && sscanf(at, "\nSigCgt:\t%llx", &caught) == 1 && (caught & (1ull << (SIGUSR2 - 1))));
    CHECK((at = strstr(buf, "\nSigIgn:")) && sscanf(at, "\nSigIgn:\t%llx", &ignored) == 1 && (ignored & (1ull << (SIGPIPE - 1))));
    CHECK(strstr(buf, "\nThreads:\t1\n") != NULL);
    CHECK(sigprocmask(SIG_UNBLOCK, &usr1, NULL) == 0);
    signal(SIGUSR2, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    read_file("/proc/self/stat", buf, sizeof buf);
    int pid = 0, ppid = 0;
    char state = 0, stat_comm[32] = "";
    CHECK(sscanf(buf, "%d (%31[^)]) %c %d", &pid, stat_comm, &state, &ppid) == 4);
    CHECK(pid == getpid() && ppid == getppid() && !strcmp(stat_comm, name) && state == 'R');
    /* mounts: the same as /proc/mounts. */
    char mounts[4096];
    read_file("/proc/self/mounts", buf, sizeof buf);
    read_file("/proc/mounts", mounts, sizeof mounts);
    CHECK(!strcmp(buf, mounts) && strstr(buf, " / ") != NULL);
}

static void memory_map(void) {
    /* maps: an anonymous mapping with its permissions, which mprotect changes; the stack. */
    size_t size = 64 << 10;
    char *area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(area != MAP_FAILED);
    CHECK(!strcmp(maps_perms((uintptr_t)area, NULL, 0), "rw-p"));
    CHECK(!strcmp(maps_perms((uintptr_t)area + size - 1, NULL, 0), "rw-p"));
    CHECK(mprotect(area, size, PROT_READ) == 0);
    CHECK(!strcmp(maps_perms((uintptr_t)area, NULL, 0), "r--p"));
    CHECK(munmap(area, size) == 0);
    CHECK(!strcmp(maps_perms((uintptr_t)area, NULL, 0), ""));
    volatile char local = 0;
    char name[64];
    CHECK(!strcmp(maps_perms((uintptr_t)&local, name, sizeof name), "rw-p") && !strcmp(name, "[stack]"));
    /* The program's code, named by its file. */
    char exe[PATH_MAX];
    read_link("/proc/self/exe", exe, sizeof exe);
    const char *code = maps_perms((uintptr_t)&memory_map, name, sizeof name);
    if (strcmp(code, "r-xp") || strcmp(name, exe)) {
        /* An image's own program is part of the kernel, which maps nothing for it. */
        CHECK(!strcmp(code, ""));
    }
}

static void descriptors(void) {
    char path[64], path2[64], buf[PATH_MAX];
    int fd = open("/tmp/procfs-a", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, "hello", 5) == 5);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    link_is(path, "/tmp/procfs-a");
    /* Renamed: the link follows the file. */
    CHECK(rename("/tmp/procfs-a", "/tmp/procfs-b") == 0);
    link_is(path, "/tmp/procfs-b");
    struct stat a, b;
    CHECK(fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    CHECK(lstat(path, &b) == 0 && S_ISLNK(b.st_mode));
    /* /dev/fd/N opens the same file with an offset of its own. */
    snprintf(path2, sizeof path2, "/dev/fd/%d", fd);
    int again = open(path2, O_RDONLY);
    CHECK(again >= 0 && again != fd && read(again, buf, 5) == 5 && !memcmp(buf, "hello", 5));
    CHECK(lseek(fd, 0, SEEK_CUR) == 5);
    close(again);
    /* The listing has every open descriptor, the listing's own included. */
    DIR *dir = opendir("/proc/self/fd");
    CHECK(dir != NULL);
    int seen = 0, count = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        int number = atoi(e->d_name);
        CHECK(fcntl(number, F_GETFD) >= 0 || number == dirfd(dir));
        seen |= (number == fd) << 0 | (number == 0) << 1 | (number == 2) << 2 | (number == dirfd(dir)) << 3;
        count++;
    }
    closedir(dir);
    CHECK(seen == 15 && count >= 5);
    /* Removed: still reached through the link. */
    CHECK(unlink("/tmp/procfs-b") == 0);
    read_link(path, buf, sizeof buf);
    CHECK(strlen(buf) > 9 && !strcmp(buf + strlen(buf) - 9, "(deleted)"));
    again = open(path, O_RDONLY);
    CHECK(again >= 0 && read(again, buf, 5) == 5 && !memcmp(buf, "hello", 5));
    close(again);
    close(fd);
    FAILS(readlink(path, buf, sizeof buf), ENOENT);
    FAILS(open(path, O_RDONLY), ENOENT);

    /* `> /dev/stdout` with standard output a file: that file, truncated. */
    fd = open("/tmp/procfs-out", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, "old contents", 12) == 12);
    fflush(stdout);
    int saved = dup(1);
    CHECK(saved >= 0 && dup2(fd, 1) == 1);
    int out = open("/dev/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int wrote = out >= 0 ? (int)write(out, "new", 3) : -1;
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    CHECK(out >= 0 && wrote == 3);
    close(out);
    CHECK(read_file("/tmp/procfs-out", buf, sizeof buf) == 3 && !strcmp(buf, "new"));
    close(fd);
    CHECK(unlink("/tmp/procfs-out") == 0);

    /* A pipe: its link names it; opening it gives new ends of the same pipe. */
    int p[2];
    CHECK(pipe(p) == 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    snprintf(path2, sizeof path2, "/dev/fd/%d", p[1]);
    read_link(path, buf, sizeof buf);
    char other[64];
    read_link(path2, other, sizeof other);
    CHECK(!strncmp(buf, "pipe:[", 6) && !strcmp(buf, other));
    CHECK(stat(path, &b) == 0 && S_ISFIFO(b.st_mode));
    int w = open(path2, O_WRONLY);
    CHECK(w >= 0 && write(w, "xy", 2) == 2);
    close(w);
    int r = open(path, O_RDONLY);
    CHECK(r >= 0 && read(r, buf, 2) == 2 && !memcmp(buf, "xy", 2));
    close(p[1]);
    CHECK(read(r, buf, 1) == 0 && read(p[0], buf, 1) == 0); /* every write end is closed */
    close(r);
    close(p[0]);
}

int procfs_family_run(const char *f) {
    if (strcmp(f, "procfs")) return 0;
    process_files();
    memory_map();
    descriptors();
    printf("ok procfs\n");
    return 1;
}
