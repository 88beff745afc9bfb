/* Processes on libos (each one a VM of its own): an unmodified C program that forks, waits,
 * signals and shares files the way Linux programs do. Each family prints "procs FAMILY: ok"
 * when every check passed, else "procs FAMILY: FAIL ..." and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *family = "?";

static void fail(const char *what) {
    printf("procs %s: FAIL %s (errno %d %s)\n", family, what, errno, strerror(errno));
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, what) do { if (!(cond)) fail(what); } while (0)

/* N children each exit with a distinct code; the parent reaps them in reverse order by pid,
 * then finds none left. */
static int wait_family(int n) {
    pid_t me = getpid(), kids[16];
    CHECK(n > 0 && n <= 16, "child count");
    for (int i = 0; i < n; i++) {
        fflush(stdout);
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            if (getppid() != me) _exit(100);
            if (getpid() == me) _exit(101);
            printf("child %d is pid %d of parent %d\n", i, getpid(), getppid());
            fflush(stdout);
            _exit(10 + i);
        }
        for (int j = 0; j < i; j++) CHECK(kids[j] != p, "distinct pids");
        CHECK(p != me, "child pid differs from the parent's");
        kids[i] = p;
    }
    for (int i = n - 1; i >= 0; i--) {
        int status = -1;
        pid_t got = waitpid(kids[i], &status, 0);
        CHECK(got == kids[i], "waitpid returns the child");
        CHECK(WIFEXITED(status), "child exited");
        CHECK(WEXITSTATUS(status) == 10 + i, "child's exit code");
    }
    errno = 0;
    CHECK(wait(NULL) == -1 && errno == ECHILD, "no children left: ECHILD");
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "WNOHANG without children: ECHILD");
    return 0;
}

static volatile sig_atomic_t chld_seen, usr1_seen;
static void on_chld(int sig) { (void)sig; chld_seen++; }
static void on_usr1(int sig) { (void)sig; usr1_seen = 1; }

/* Deaths by signal, kill to another process, SIGCHLD, waitid with WNOWAIT. */
static int signal_family(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0, "sigaction SIGCHLD");

    pid_t raiser = fork();
    CHECK(raiser >= 0, "fork");
    if (raiser == 0) { raise(SIGTERM); _exit(3); }
    int status;
    CHECK(waitpid(raiser, &status, 0) == raiser, "waitpid raiser");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "raise(SIGTERM) ends the child by SIGTERM");
    CHECK(chld_seen >= 1, "SIGCHLD arrived");

    pid_t sleeper = fork();
    CHECK(sleeper >= 0, "fork");
    if (sleeper == 0) { for (;;) pause(); }
    CHECK(kill(sleeper, 0) == 0, "kill(pid, 0) finds the child");
    CHECK(kill(sleeper, SIGKILL) == 0, "kill SIGKILL");
    siginfo_t info = {0};
    CHECK(waitid(P_PID, sleeper, &info, WEXITED | WNOWAIT) == 0, "waitid WNOWAIT");
    CHECK(info.si_pid == sleeper && info.si_signo == SIGCHLD && info.si_code == CLD_KILLED && info.si_status == SIGKILL, "waitid's siginfo");
    CHECK(waitpid(sleeper, &status, 0) == sleeper, "still there after WNOWAIT");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "SIGKILL status");
    errno = 0;
    CHECK(kill(sleeper, 0) == -1 && errno == ESRCH, "a reaped child is gone: ESRCH");

    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid_t handler = fork();
    CHECK(handler >= 0, "fork");
    if (handler == 0) {
        struct sigaction usr = {0};
        usr.sa_handler = on_usr1;
        sigaction(SIGUSR1, &usr, NULL);
        printf("handler child ready\n");
        fflush(stdout);
        while (!usr1_seen) pause();
        _exit(42);
    }
    /* No pipe between VMs yet: wait for the child's line by retrying the signal until the
     * child's handler ran (a signal before the handler is installed would kill it). */
    sleep(1);
    CHECK(kill(handler, SIGUSR1) == 0, "kill SIGUSR1");
    CHECK(waitpid(handler, &status, 0) == handler, "waitpid handler");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "the child's handler ran and it exited 42");
    errno = 0;
    CHECK(kill(99999, SIGTERM) == -1 && errno == ESRCH, "kill of no such process: ESRCH");
    return 0;
}

/* A child writes files on the shared root; the parent reads them after wait. */
static int files_family(const char *dir) {
    char path[256], buf[64];
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            snprintf(path, sizeof path, "%s/from-child-%d", dir, i);
            int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
            if (fd < 0) _exit(2);
            int len = snprintf(buf, sizeof buf, "written by %d\n", getpid());
            if (write(fd, buf, len) != len || fsync(fd) != 0 || close(fd) != 0) _exit(3);
            _exit(0);
        }
        int status;
        CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writing child succeeded");
        snprintf(path, sizeof path, "%s/from-child-%d", dir, i);
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0, "the parent opens the child's file");
        char want[64];
        int len = snprintf(want, sizeof want, "written by %d\n", p);
        memset(buf, 0, sizeof buf);
        CHECK(read(fd, buf, sizeof buf) == len && memcmp(buf, want, len) == 0, "the parent reads what the child wrote");
        close(fd);
        CHECK(unlink(path) == 0, "unlink");
    }
    return 0;
}

/* Fork until the process limit answers EAGAIN; then stop and reap every child. */
static int limit_family(void) {
    pid_t kids[64];
    int n = 0;
    for (;;) {
        CHECK(n < 64, "the limit stops forks before 64");
        fflush(stdout);
        pid_t p = fork();
        if (p < 0) {
            CHECK(errno == EAGAIN, "fork beyond the limit fails with EAGAIN");
            break;
        }
        if (p == 0) { for (;;) pause(); }
        kids[n++] = p;
    }
    printf("procs limit: %d children before EAGAIN\n", n);
    for (int i = 0; i < n; i++) CHECK(kill(kids[i], SIGKILL) == 0, "kill");
    for (int i = 0; i < n; i++) {
        int status;
        CHECK(waitpid(kids[i], &status, 0) == kids[i] && WIFSIGNALED(status), "reap");
    }
    fflush(stdout);
    pid_t again = fork();
    CHECK(again >= 0, "fork works again after the children ended");
    if (again == 0) _exit(0);
    CHECK(waitpid(again, NULL, 0) == again, "reap");
    return 0;
}

/* Reads everything from fd until end of file into buf (at most cap bytes); the count. */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR) continue;
        CHECK(n >= 0, "read");
        if (n == 0) return got;
        got += n;
        CHECK(got < cap, "more bytes than expected");
    }
}

static void write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(50);
        p += n;
        len -= n;
    }
}

/* Pipes whose ends are in different processes: many writers, a large transfer, bytes written
 * before the fork, EPIPE and SIGPIPE, poll, and a pipeline of three processes. */
static int pipes_family(void) {
    static char buf[1 << 21];
    int fds[2], status;
    CHECK(pipe(fds) == 0, "pipe");
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        fflush(stdout);
        kids[i] = fork();
        CHECK(kids[i] >= 0, "fork");
        if (kids[i] == 0) {
            close(fds[0]);
            char line[64];
            for (int j = 0; j < 5; j++) {
                int len = snprintf(line, sizeof line, "child %d line %d\n", i, j);
                write_all(fds[1], line, len);
            }
            _exit(20 + i);
        }
    }
    close(fds[1]);
    size_t got = read_all(fds[0], buf, sizeof buf);
    buf[got] = 0;
    close(fds[0]);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 5; j++) {
            char line[64];
            snprintf(line, sizeof line, "child %d line %d\n", i, j);
            CHECK(strstr(buf, line) != NULL, "every child's every line arrived");
        }
        CHECK(waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 20 + i, "writer's status");
    }
    CHECK(got == 3 * 5 * strlen("child 0 line 0\n"), "nothing more arrived");

    /* 1 MiB from a child, checked byte by byte. */
    CHECK(pipe(fds) == 0, "pipe");
    fflush(stdout);
    pid_t big = fork();
    CHECK(big >= 0, "fork");
    if (big == 0) {
        close(fds[0]);
        for (size_t i = 0; i < (1 << 20); i++) buf[i] = (char)(i * 7 + (i >> 12));
        write_all(fds[1], buf, 1 << 20);
        _exit(0);
    }
    close(fds[1]);
    got = read_all(fds[0], buf, sizeof buf);
    CHECK(got == (1 << 20), "1 MiB arrived");
    for (size_t i = 0; i < got; i++) CHECK(buf[i] == (char)(i * 7 + (i >> 12)), "every byte of the 1 MiB");
    close(fds[0]);
    CHECK(waitpid(big, &status, 0) == big && WIFEXITED(status) && WEXITSTATUS(status) == 0, "big writer's status");

    /* Bytes written before the fork belong to whoever reads them first, once. */
    CHECK(pipe(fds) == 0, "pipe");
    write_all(fds[1], "early", 5);
    fflush(stdout);
    pid_t early = fork();
    CHECK(early >= 0, "fork");
    if (early == 0) {
        char five[6] = {0};
        _exit(read(fds[0], five, 5) == 5 && !strcmp(five, "early") ? 0 : 1);
    }
    CHECK(waitpid(early, &status, 0) == early && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child read the early bytes");
    struct pollfd pfd = {fds[0], POLLIN, 0};
    CHECK(poll(&pfd, 1, 0) == 0, "and they are gone for the parent");
    close(fds[0]);
    close(fds[1]);

    /* poll wakes when a child writes; EPIPE and SIGPIPE when the reader is gone. */
    CHECK(pipe(fds) == 0, "pipe");
    fflush(stdout);
    pid_t later = fork();
    CHECK(later >= 0, "fork");
    if (later == 0) {
        close(fds[0]);
        usleep(200000);
        write_all(fds[1], "x", 1);
        _exit(0);
    }
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.revents = 0;
    CHECK(poll(&pfd, 1, 10000) == 1 && (pfd.revents & POLLIN), "poll sees the child's byte");
    CHECK(waitpid(later, &status, 0) == later, "reap");
    char one;
    CHECK(read(fds[0], &one, 1) == 1 && one == 'x', "read it");
    CHECK(read(fds[0], &one, 1) == 0, "then end of file");
    close(fds[0]);

    CHECK(pipe(fds) == 0, "pipe");
    fflush(stdout);
    pid_t orphan = fork();
    CHECK(orphan >= 0, "fork");
    if (orphan == 0) {
        close(fds[0]);
        usleep(200000);
        write(fds[1], "y", 1); /* no reader anywhere: SIGPIPE ends this process */
        _exit(0);
    }
    close(fds[0]);
    close(fds[1]);
    CHECK(waitpid(orphan, &status, 0) == orphan && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE, "SIGPIPE ended the writer");

    /* A writer whose VM dies mid-pipe: its reader sees end of file, not a hang. */
    CHECK(pipe(fds) == 0, "pipe");
    fflush(stdout);
    pid_t dying = fork();
    CHECK(dying >= 0, "fork");
    if (dying == 0) {
        close(fds[0]);
        write_all(fds[1], "partial", 7);
        for (;;) pause();
    }
    close(fds[1]);
    char part[8] = {0};
    CHECK(read(fds[0], part, 7) == 7 && !strcmp(part, "partial"), "the first bytes arrive");
    CHECK(kill(dying, SIGKILL) == 0, "kill the writer");
    CHECK(read(fds[0], part, 7) == 0, "end of file once the writer's VM is gone");
    CHECK(waitpid(dying, &status, 0) == dying && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "reap");
    close(fds[0]);

    /* A pipeline: seq 1..1000 | a doubler | a summer that exits with the sum mod 256. */
    int a[2], b[2];
    CHECK(pipe(a) == 0 && pipe(b) == 0, "pipes");
    fflush(stdout);
    pid_t stage[3];
    for (int i = 0; i < 3; i++) {
        stage[i] = fork();
        CHECK(stage[i] >= 0, "fork");
        if (stage[i] != 0) continue;
        if (i == 0) dup2(a[1], 1);
        if (i == 1) { dup2(a[0], 0); dup2(b[1], 1); }
        if (i == 2) dup2(b[0], 0);
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        if (i == 0) { for (int n = 1; n <= 1000; n++) printf("%d\n", n); fflush(stdout); _exit(0); }
        long n, sum = 0;
        if (i == 1) { while (scanf("%ld", &n) == 1) printf("%ld\n", 2 * n); fflush(stdout); _exit(0); }
        while (scanf("%ld", &n) == 1) sum += n;
        _exit(sum == 1001000 ? 0 : 1);
    }
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    for (int i = 0; i < 3; i++) {
        CHECK(waitpid(stage[i], &status, 0) == stage[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0, "every stage of the pipeline succeeded");
    }
    return 0;
}

extern char **environ;

/* execve in a child: another program runs with our arguments and environment; execve of what
 * cannot run fails in the caller, which goes on; a #! script runs its interpreter; posix_spawn. */
static int exec_family(void) {
    char *bad[][2] = {{"/bin/missing", "ENOENT"}, {"/bin/hello-dynamic", "ENOEXEC"}, {"/bin/hello-wrong-arch", "ENOEXEC"}, {"/bin", "EACCES"}};
    int want[] = {ENOENT, ENOEXEC, ENOEXEC, EACCES};
    for (int i = 0; i < 4; i++) {
        char *args[] = {bad[i][0], NULL};
        errno = 0;
        CHECK(execve(bad[i][0], args, environ) == -1 && errno == want[i], bad[i][1]);
    }
    fflush(stdout);
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        char *args[] = {"/bin/hello-musl", "from-exec", "--exit", "7", NULL};
        char *env[] = {"GREETING=exec", NULL};
        execve(args[0], args, env);
        _exit(99);
    }
    int status;
    CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 7, "the exec'd program's exit code");

    int fd = open("/tmp/script", O_CREAT | O_WRONLY | O_TRUNC, 0755);
    CHECK(fd >= 0, "create the script");
    const char *text = "#!/bin/procs script-arg\nignored\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text) && close(fd) == 0, "write the script");
    fflush(stdout);
    p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        char *args[] = {"/tmp/script", "one", NULL};
        execve(args[0], args, environ);
        _exit(98);
    }
    CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 5, "the script's interpreter ran with its arguments");

    /* vfork (x86_64: its own call; aarch64: clone(CLONE_VM | CLONE_VFORK) on the parent's stack),
     * then exec. */
    fflush(stdout);
    p = vfork();
    CHECK(p >= 0, "vfork");
    if (p == 0) {
        char *args[] = {"/bin/hello-musl", "vforked", "--exit", "4", NULL};
        execve(args[0], args, environ);
        _exit(97);
    }
    CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 4, "vfork + exec");

    pid_t spawned;
    char *args[] = {"/bin/hello-musl", "spawned", "--exit", "9", NULL};
    errno = posix_spawn(&spawned, args[0], NULL, NULL, args, environ);
    CHECK(errno == 0, "posix_spawn (errno: its result)");
    CHECK(waitpid(spawned, &status, 0) == spawned && WIFEXITED(status) && WEXITSTATUS(status) == 9, "posix_spawn's child exit code");
    return 0;
}

/* Run as a script's interpreter: argv is {interpreter, its argument, script, script args}. */
static int script_family(int argc, char **argv) {
    printf("script: argc=%d", argc);
    for (int i = 0; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\n");
    return argc == 4 && !strcmp(argv[0], "/bin/procs") && !strcmp(argv[2], "/tmp/script") && !strcmp(argv[3], "one") ? 5 : 1;
}

/* Parent and children share an open file's offset, as on Linux: writes through an inherited
 * descriptor follow each other instead of overwriting, reads continue where the other
 * process stopped, concurrent writers never overwrite one another, and pread/pwrite leave
 * the offset alone. `dir` is on a virtio-fs share, so the parent also reads the bytes. */
static int offsets_family(const char *dir) {
    char path[256], buf[4096];
    snprintf(path, sizeof path, "%s/shared-offset", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0, "open");
    CHECK(write(fd, "P0\n", 3) == 3, "the parent writes first");
    const char *lines[] = {"C1\n", "C2\n"};
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            if (lseek(fd, 0, SEEK_CUR) != 6 * i + 3) _exit(30);
            if (write(fd, lines[i], 3) != 3) _exit(31);
            _exit(0);
        }
        int status;
        CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child found the parent's offset and wrote");
        CHECK(lseek(fd, 0, SEEK_CUR) == 6 * i + 6, "the parent's offset moved by the child's write");
        CHECK(write(fd, i == 0 ? "P1\n" : "P2\n", 3) == 3, "the parent writes after the child");
    }
    memset(buf, 0, sizeof buf);
    CHECK(pread(fd, buf, sizeof buf, 0) == 15 && !strcmp(buf, "P0\nC1\nP1\nC2\nP2\n"), "the writes follow each other");

    /* Reads: the child reads the first line, the parent the next. */
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    fflush(stdout);
    pid_t reader = fork();
    CHECK(reader >= 0, "fork");
    if (reader == 0) {
        char line[4] = {0};
        _exit(read(fd, line, 3) == 3 && !strcmp(line, "P0\n") && pwrite(fd, "p", 1, 0) == 1 ? 0 : 32);
    }
    int status;
    CHECK(waitpid(reader, &status, 0) == reader && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child read the first line");
    int unread = -1;
    CHECK(ioctl(fd, FIONREAD, &unread) == 0 && unread == 12, "FIONREAD counts from the child's offset");
    memset(buf, 0, sizeof buf);
    CHECK(read(fd, buf, 3) == 3 && !strcmp(buf, "C1\n"), "the parent reads on from the child's offset (pwrite moved nothing)");

    /* Concurrent writers: two children and the parent append records through the shared
     * offset at once; none overwrites another. */
    CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0, "empty the file");
    enum { RECORDS = 40, RECORD = 8 };
    pid_t writers[2];
    for (int w = 0; w < 2; w++) {
        fflush(stdout);
        writers[w] = fork();
        CHECK(writers[w] >= 0, "fork");
        if (writers[w] == 0) {
            char record[RECORD + 1];
            for (int r = 0; r < RECORDS; r++) {
                snprintf(record, sizeof record, "w%d-%03d\n", w, r);
                if (write(fd, record, RECORD) != RECORD) _exit(33);
            }
            _exit(0);
        }
    }
    char record[RECORD + 1];
    for (int r = 0; r < RECORDS; r++) {
        snprintf(record, sizeof record, "pp-%03d\n", r);
        CHECK(write(fd, record, RECORD) == RECORD, "the parent writes a record");
    }
    for (int w = 0; w < 2; w++) {
        CHECK(waitpid(writers[w], &status, 0) == writers[w] && WIFEXITED(status) && WEXITSTATUS(status) == 0, "a writer finished");
    }
    CHECK(lseek(fd, 0, SEEK_CUR) == 3 * RECORDS * RECORD, "the offset counts every record");
    int seen[3] = {0, 0, 0};
    for (int r = 0; r < 3 * RECORDS; r++) {
        CHECK(pread(fd, record, RECORD, (off_t)r * RECORD) == RECORD, "read a record back");
        int who = record[0] == 'p' ? 2 : record[1] - '0';
        CHECK(who >= 0 && who <= 2 && record[2] == '-' && record[6] == '\n', "every record is whole");
        CHECK(atoi(record + 3) == seen[who], "each writer's records in order");
        seen[who]++;
    }
    CHECK(close(fd) == 0 && unlink(path) == 0, "close and unlink");
    return 0;
}

/* Process groups and sessions across processes (the host's table decides, as Linux's kernel
 * does): setpgid of the caller and of a child, errors, a signal to a group and to the
 * caller's own group, waitpid by group, setsid in a child. The first process leads session 1
 * and group 1. */
static int groups_family(void) {
    pid_t me = getpid();
    CHECK(getpgrp() == me && getsid(0) == me && getpgid(0) == me, "the first process leads its group and session");
    errno = 0;
    CHECK(setpgid(0, 0) == -1 && errno == EPERM, "a session leader cannot move: EPERM");
    errno = 0;
    CHECK(setsid() == -1 && errno == EPERM, "a group leader cannot start a session: EPERM");
    errno = 0;
    CHECK(setpgid(0, -1) == -1 && errno == EINVAL, "a negative group: EINVAL");
    errno = 0;
    CHECK(getpgid(4000) == -1 && errno == ESRCH, "getpgid of no process: ESRCH");
    errno = 0;
    CHECK(setpgid(4000, 0) == -1 && errno == ESRCH, "setpgid of no process: ESRCH");
    errno = 0;
    CHECK(kill(-4000, 0) == -1 && errno == ESRCH, "a signal to no group: ESRCH");

    /* a makes its own group (the parent says so too, as shells do); b is moved into it. */
    fflush(stdout);
    pid_t a = fork();
    CHECK(a >= 0, "fork a");
    if (a == 0) {
        if (setpgid(0, 0) != 0 || getpgrp() != getpid() || getsid(0) != me) _exit(20);
        for (;;) pause(); /* until SIGTERM */
    }
    CHECK(setpgid(a, a) == 0, "the parent puts a in its own group");
    CHECK(getpgid(a) == a && getsid(a) == me, "a's group and session as the host sees them");
    pid_t b = fork();
    CHECK(b >= 0, "fork b");
    if (b == 0) {
        for (;;) pause();
    }
    CHECK(getpgid(b) == me, "b starts in its parent's group");
    errno = 0;
    CHECK(setpgid(b, 4000) == -1 && errno == EPERM, "a group that does not exist: EPERM");
    CHECK(setpgid(b, a) == 0 && getpgid(b) == a, "b joins a's group");
    CHECK(kill(-1, 0) == 0, "kill(-1) finds the other processes");
    CHECK(kill(-a, SIGTERM) == 0, "a signal to a's group");
    for (int i = 0; i < 2; i++) {
        int status = 0;
        pid_t got = waitpid(-a, &status, 0);
        CHECK(got == a || got == b, "waitpid(-PGID) returns a member");
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "both members died of SIGTERM");
    }
    errno = 0;
    CHECK(waitpid(-a, NULL, WNOHANG) == -1 && errno == ECHILD, "no member of a's group left: ECHILD");

    /* kill(0) reaches the caller's own group: the caller and c. */
    usr1_seen = 0;
    signal(SIGUSR1, on_usr1);
    fflush(stdout);
    pid_t c = fork();
    CHECK(c >= 0, "fork c");
    if (c == 0) {
        while (!usr1_seen) pause();
        _exit(42);
    }
    CHECK(kill(0, SIGUSR1) == 0, "kill(0)");
    int status = 0;
    CHECK(waitpid(0, &status, 0) == c, "waitpid(0) returns the child in the caller's group");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "c heard SIGUSR1");
    CHECK(usr1_seen, "the caller heard its own group's SIGUSR1");
    signal(SIGUSR1, SIG_DFL);

    /* d starts a session; its parent then sees it and cannot move it. */
    int ready[2], release[2];
    CHECK(pipe(ready) == 0 && pipe(release) == 0, "pipes");
    fflush(stdout);
    pid_t d = fork();
    CHECK(d >= 0, "fork d");
    if (d == 0) {
        close(ready[0]);
        close(release[1]);
        pid_t sid = setsid();
        int ok = sid == getpid() && getsid(0) == sid && getpgrp() == sid;
        errno = 0;
        ok = ok && setpgid(0, 0) == -1 && errno == EPERM;
        ok = ok && setsid() == -1 && errno == EPERM;
        write_all(ready[1], ok ? "y" : "n", 1);
        char byte;
        (void)read(release[0], &byte, 1);
        _exit(ok ? 0 : 21);
    }
    close(ready[1]);
    close(release[0]);
    char answer = 0;
    CHECK(read(ready[0], &answer, 1) == 1 && answer == 'y', "setsid in the child");
    CHECK(getsid(d) == d && getpgid(d) == d, "the child's new session as the host sees it");
    errno = 0;
    CHECK(setpgid(d, me) == -1 && errno == EPERM, "a child in another session cannot move: EPERM");
    close(release[1]);
    CHECK(waitpid(d, &status, 0) == d && WIFEXITED(status) && WEXITSTATUS(status) == 0, "d's checks");
    close(ready[0]);

    /* e calls execve: from then on its parent cannot move it (EACCES). The parent knows the
     * exec happened when a close-on-exec pipe end closes. */
    int execed[2], input[2];
    CHECK(pipe2(execed, O_CLOEXEC) == 0 && pipe(input) == 0, "pipes");
    fflush(stdout);
    pid_t e = fork();
    CHECK(e >= 0, "fork e");
    if (e == 0) {
        close(execed[0]);
        close(input[1]);
        dup2(input[0], 0);
        execl("/bin/procs", "procs", "wait-stdin", (char *)NULL);
        _exit(22);
    }
    close(execed[1]);
    close(input[0]);
    char none;
    CHECK(read(execed[0], &none, 1) == 0, "the close-on-exec end closed: e has called execve");
    errno = 0;
    CHECK(setpgid(e, e) == -1 && errno == EACCES, "a child that called execve cannot be moved: EACCES");
    write_all(input[1], "x", 1);
    CHECK(waitpid(e, &status, 0) == e && WIFEXITED(status) && WEXITSTATUS(status) == 0, "e ran the new program");
    close(execed[0]);
    close(input[1]);

    /* f makes a group and a child g in it, then ends: the first process adopts g (as init
     * does) and waits for it by its group. */
    int hold[2];
    CHECK(pipe(hold) == 0, "pipe");
    fflush(stdout);
    pid_t f = fork();
    CHECK(f >= 0, "fork f");
    if (f == 0) {
        if (setpgid(0, 0) != 0) _exit(26);
        pid_t maker = getpid();
        pid_t g = fork();
        if (g < 0) _exit(24);
        if (g == 0) {
            close(hold[1]);
            char byte;
            _exit(read(hold[0], &byte, 1) == 1 && getpgrp() == maker ? 25 : 28);
        }
        _exit(0);
    }
    close(hold[0]);
    CHECK(waitpid(f, &status, 0) == f && WIFEXITED(status) && WEXITSTATUS(status) == 0, "f made its group and child");
    write_all(hold[1], "x", 1);
    close(hold[1]);
    pid_t adopted = waitpid(-f, &status, 0);
    CHECK(adopted > 0 && adopted != f, "waitpid(-PGID) returns the adopted orphan");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 25, "the orphan ran in f's group under its new parent");
    errno = 0;
    CHECK(waitpid(-f, NULL, WNOHANG) == -1 && errno == ECHILD, "nobody left in f's group");
    errno = 0;
    CHECK(kill(-1, 0) == -1 && errno == ESRCH, "kill(-1) with no other process: ESRCH");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "script-arg")) return script_family(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "wait-stdin")) {
        char byte;
        return read(0, &byte, 1) == 1 ? 0 : 23;
    }
    if (argc < 2) { printf("usage: procs wait N | signal | files DIR | limit | exec | pipes\n"); return 2; }
    family = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    int r;
    if (!strcmp(family, "wait")) r = wait_family(argc > 2 ? atoi(argv[2]) : 3);
    else if (!strcmp(family, "signal")) r = signal_family();
    else if (!strcmp(family, "files")) r = files_family(argc > 2 ? argv[2] : "/tmp");
    else if (!strcmp(family, "limit")) r = limit_family();
    else if (!strcmp(family, "exec")) r = exec_family();
    else if (!strcmp(family, "pipes")) r = pipes_family();
    else if (!strcmp(family, "groups")) r = groups_family();
    else if (!strcmp(family, "offsets")) r = offsets_family(argc > 2 ? argv[2] : "/tmp");
    else { printf("procs: unknown family %s\n", family); return 2; }
    if (r == 0) printf("procs %s: ok\n", family);
    return r;
}
