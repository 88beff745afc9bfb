/* shimtest's socket families (see shimtest.c for the program):
 *   unix             AF_UNIX stream and datagram sockets inside the program: socketpair between
 *                    threads, bind/listen/connect/accept by path and abstract name, errors.
 *   net              AF_INET/AF_INET6 calls that need no peer: errors of every call (EBADF,
 *                    ENOTSOCK, EAFNOSUPPORT, EINVAL for bad lengths, EFAULT, ENOTCONN,
 *                    EADDRINUSE, EOPNOTSUPP, ENOPROTOOPT), bind of port 0 and getsockname,
 *                    options, O_NONBLOCK by fcntl and FIONBIO, a non-blocking accept.
 *   netpeer=PORT     against the test's host peer at 10.0.2.1 (a tap): TCP echo through
 *                    read/write, send/recv, sendmsg/recvmsg with iovecs, MSG_PEEK, MSG_WAITALL,
 *                    FIONREAD; ECONNREFUSED from PORT+1; a non-blocking connect (EINPROGRESS,
 *                    then poll and SO_ERROR 0); EPIPE and SIGPIPE once the peer closed, no
 *                    signal with MSG_NOSIGNAL; UDP echo with sendto/recvfrom and connect;
 *                    sendfile of a file into the connection.
 *   resolve=NAME,IP  getaddrinfo of localhost (/etc/hosts), getservbyname (/etc/services), and
 *                    of NAME through the DNS server of /etc/resolv.conf (expecting IP; an
 *                    unknown name gives EAI_NONAME).
 *   netserve=PORT,N  an epoll edge-triggered server (accept4 non-blocking, reads and writes
 *                    until EAGAIN): echoes what each of N connections sends, until every one of
 *                    them closed; prints "serving" when ready and "served N connections".
 * Runs unmodified on Linux too (netpeer/netserve need the peer at 10.0.2.1). */
#define _GNU_SOURCE
#include "check.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <stddef.h>
#include <unistd.h>

static void *echo_once(void *arg) {
    int fd = (int)(long)arg;
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        CHECK(write(fd, buf, n) == n);
    close(fd);
    return NULL;
}

static void unix_family(void) {
    int sv[2];
    char buf[64];
    /* socketpair: a stream between two threads, EOF after the peer closes. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(fcntl(sv[0], F_GETFD) == FD_CLOEXEC);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, echo_once, (void *)(long)sv[1]) == 0);
    CHECK(write(sv[0], "ping", 4) == 4);
    CHECK(read(sv[0], buf, sizeof buf) == 4 && !memcmp(buf, "ping", 4));
    CHECK(shutdown(sv[0], SHUT_WR) == 0);
    CHECK(read(sv[0], buf, sizeof buf) == 0); /* the echo thread saw EOF and closed */
    CHECK(pthread_join(t, NULL) == 0);
    close(sv[0]);
    /* Datagram pairs keep message boundaries; MSG_TRUNC reports the real length. */
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
    CHECK(send(sv[0], "one", 3, 0) == 3 && send(sv[0], "three", 5, 0) == 5);
    int avail = 0;
    CHECK(ioctl(sv[1], FIONREAD, &avail) == 0 && avail == 3);
    CHECK(recv(sv[1], buf, sizeof buf, 0) == 3 && !memcmp(buf, "one", 3));
    CHECK(recv(sv[1], buf, 2, MSG_TRUNC) == 5);
    FAILS(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(sv[0]);
    close(sv[1]);
    /* Named stream sockets: bind, listen, connect, accept, names on both ends. */
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, "/tmp/shimtest.sock");
    mkdir("/tmp", 0777);
    unlink(addr.sun_path);
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(server >= 0);
    CHECK(bind(server, (struct sockaddr *)&addr, sizeof addr) == 0);
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    FAILS(bind(other, (struct sockaddr *)&addr, sizeof addr), EADDRINUSE);
    FAILS(connect(other, (struct sockaddr *)&addr, sizeof addr), ECONNREFUSED); /* not listening */
    CHECK(listen(server, 4) == 0);
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(client, (struct sockaddr *)&addr, sizeof addr) == 0);
    FAILS(connect(client, (struct sockaddr *)&addr, sizeof addr), EISCONN);
    struct sockaddr_un peer;
    socklen_t len = sizeof peer;
    int conn = accept4(server, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK);
    CHECK(conn >= 0 && len >= sizeof(sa_family_t) && peer.sun_family == AF_UNIX);
    CHECK(fcntl(conn, F_GETFL) & O_NONBLOCK);
    FAILS(read(conn, buf, sizeof buf), EAGAIN);
    len = sizeof peer;
    CHECK(getpeername(client, (struct sockaddr *)&peer, &len) == 0 && !strcmp(peer.sun_path, "/tmp/shimtest.sock"));
    CHECK(write(client, "abc", 3) == 3 && read(conn, buf, sizeof buf) == 3);
    /* SIGPIPE and EPIPE writing to a closed peer; MSG_NOSIGNAL suppresses the signal. */
    close(conn);
    signal(SIGPIPE, SIG_IGN);
    FAILS(write(client, "x", 1), EPIPE);
    FAILS(send(client, "x", 1, MSG_NOSIGNAL), EPIPE);
    signal(SIGPIPE, SIG_DFL);
    close(client);
    close(other);
    close(server);
    /* A path name is a socket file, as on Linux. It stays after the close: connecting is
     * refused and binding the path again is EADDRINUSE until it is unlinked. */
    struct stat st;
    CHECK(stat(addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode));
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    FAILS(connect(again, (struct sockaddr *)&addr, sizeof addr), ECONNREFUSED);
    FAILS(bind(again, (struct sockaddr *)&addr, sizeof addr), EADDRINUSE);
    CHECK(unlink(addr.sun_path) == 0);
    FAILS(connect(again, (struct sockaddr *)&addr, sizeof addr), ENOENT);
    CHECK(bind(again, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(again, 4) == 0);
    /* The file leads to the socket: through a symlink, a hard link, and after a rename. */
    const char *links[] = {"/tmp/shimtest.symlink", "/tmp/shimtest.hardlink", "/tmp/shimtest.renamed"};
    for (int i = 0; i < 3; i++) {
        unlink(links[i]);
    }
    CHECK(symlink(addr.sun_path, links[0]) == 0 && link(addr.sun_path, links[1]) == 0);
    for (int i = 0; i < 3; i++) {
        if (i == 2) {
            CHECK(rename(addr.sun_path, links[2]) == 0);
            FAILS(stat(links[0], &st), ENOENT); /* the symlink now dangles */
        }
        struct sockaddr_un via = {.sun_family = AF_UNIX};
        strcpy(via.sun_path, links[i]);
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(c, (struct sockaddr *)&via, sizeof via) == 0);
        int a = accept(again, NULL, NULL);
        CHECK(a >= 0 && write(c, "L", 1) == 1 && read(a, buf, 1) == 1 && buf[0] == 'L');
        close(a);
        close(c);
    }
    /* A file that is not a socket refuses; a missing one is ENOENT. */
    int plain = open("/tmp/shimtest.plain", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(plain >= 0);
    close(plain);
    struct sockaddr_un not_socket = {.sun_family = AF_UNIX};
    strcpy(not_socket.sun_path, "/tmp/shimtest.plain");
    int probe = socket(AF_UNIX, SOCK_STREAM, 0);
    FAILS(connect(probe, (struct sockaddr *)&not_socket, sizeof not_socket), ECONNREFUSED);
    close(probe);
    close(again);
    for (int i = 0; i < 3; i++) {
        unlink(links[i]);
    }
    unlink("/tmp/shimtest.plain");
    /* An abstract name for datagrams, with the sender's autobound name to answer. */
    struct sockaddr_un abs = {.sun_family = AF_UNIX};
    memcpy(abs.sun_path, "\0shimtest", 9);
    socklen_t abs_len = offsetof(struct sockaddr_un, sun_path) + 9;
    int rx = socket(AF_UNIX, SOCK_DGRAM, 0), tx = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(bind(rx, (struct sockaddr *)&abs, abs_len) == 0);
    struct sockaddr_un auto_name = {.sun_family = AF_UNIX};
    CHECK(bind(tx, (struct sockaddr *)&auto_name, sizeof(sa_family_t)) == 0);
    CHECK(sendto(tx, "hi", 2, 0, (struct sockaddr *)&abs, abs_len) == 2);
    struct sockaddr_un from;
    len = sizeof from;
    CHECK(recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) == 2);
    CHECK(len > sizeof(sa_family_t) && from.sun_path[0] == 0); /* an abstract autobind name */
    CHECK(sendto(rx, "back", 4, 0, (struct sockaddr *)&from, len) == 4);
    CHECK(recv(tx, buf, sizeof buf, 0) == 4 && !memcmp(buf, "back", 4));
    close(rx);
    FAILS(sendto(tx, "hi", 2, 0, (struct sockaddr *)&abs, abs_len), ECONNREFUSED);
    close(tx);
    FAILS(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
    int *volatile bad = (int *)8; /* volatile: the compiler must not see it is bad */
    FAILS(socketpair(AF_UNIX, SOCK_STREAM, 0, bad), EFAULT);
    printf("ok unix\n");
}

static void net_family(void) {
    char buf[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_ANY)};
    /* Bad arguments first. */
    FAILS(socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
    FAILS(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
    FAILS(socket(AF_INET, SOCK_STREAM | 0x40000000, 0), EINVAL);
    FAILS(bind(fd, (struct sockaddr *)&any, sizeof any - 1), EINVAL);
    FAILS(bind(fd, (struct sockaddr *)8, sizeof any), EFAULT);
    FAILS(bind(999, (struct sockaddr *)&any, sizeof any), EBADF);
    FAILS(bind(1, (struct sockaddr *)&any, sizeof any), ENOTSOCK);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    FAILS(bind(fd, (struct sockaddr *)&six, sizeof six), EAFNOSUPPORT);
    FAILS(recv(fd, buf, sizeof buf, 0), ENOTCONN);
    socklen_t len = sizeof any;
    FAILS(getpeername(fd, (struct sockaddr *)&any, &len), ENOTCONN);
    FAILS(accept(fd, NULL, NULL), EINVAL); /* not listening */
    int value = 1;
    FAILS(setsockopt(fd, SOL_SOCKET, 12345, &value, sizeof value), ENOPROTOOPT);
    FAILS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &value, 2), EINVAL);
    /* bind port 0, the port it got, listen, a second bind of that port. */
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &value, sizeof value) == 0);
    CHECK(bind(fd, (struct sockaddr *)&any, sizeof any) == 0);
    FAILS(bind(fd, (struct sockaddr *)&any, sizeof any), EINVAL);
    struct sockaddr_in name;
    len = sizeof name;
    CHECK(getsockname(fd, (struct sockaddr *)&name, &len) == 0 && len == sizeof name);
    CHECK(name.sin_family == AF_INET && ntohs(name.sin_port) != 0);
    int second = socket(AF_INET, SOCK_STREAM, 0);
    FAILS(bind(second, (struct sockaddr *)&name, sizeof name), EADDRINUSE);
    close(second);
    CHECK(listen(fd, 16) == 0);
    int accept_conn = 0;
    len = sizeof accept_conn;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accept_conn, &len) == 0 && accept_conn == 1);
    int type = 0;
    len = sizeof type;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM && len == sizeof type);
    /* O_NONBLOCK set after creation, by fcntl and by FIONBIO, is honoured by accept. */
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    FAILS(accept(fd, NULL, NULL), EAGAIN);
    value = 0;
    CHECK(ioctl(fd, FIONBIO, &value) == 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK));
    value = 1;
    CHECK(ioctl(fd, FIONBIO, &value) == 0);
    FAILS(accept4(fd, NULL, NULL, SOCK_NONBLOCK), EAGAIN);
    /* The raw call: musl's accept4 retries an EINVAL as a plain accept. */
    FAILS(syscall(SYS_accept4, fd, NULL, NULL, 0x1), EINVAL);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0);
    /* Options round-trip. */
    int nodelay = 1;
    int tcp = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(tcp >= 0 && setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay) == 0);
    nodelay = 0;
    len = sizeof nodelay;
    CHECK(getsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0 && nodelay == 1);
    struct timeval tv = {.tv_sec = 2, .tv_usec = 500000}, got;
    CHECK(setsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    len = sizeof got;
    CHECK(getsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &got, &len) == 0 && got.tv_sec == 2 && got.tv_usec == 500000);
    int domain = 0;
    len = sizeof domain;
    CHECK(getsockopt(tcp, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_INET6);
    FAILS(getsockopt(tcp, SOL_SOCKET, SO_TYPE, &type, (socklen_t *)8), EFAULT);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    FAILS(setsockopt(udp, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay), EOPNOTSUPP);
    FAILS(send(udp, "x", 1, 0), EDESTADDRREQ);
    FAILS(listen(udp, 1), EOPNOTSUPP);
    /* A file is not a socket, a socket is not seekable. */
    FAILS(listen(0, 1), ENOTSOCK);
    FAILS(lseek(tcp, 0, SEEK_SET), ESPIPE);
    close(udp);
    close(tcp);
    close(fd);
    printf("ok net\n");
}

static volatile int sigpipes;
static void on_sigpipe(int sig) {
    (void)sig;
    sigpipes++;
}

static int connect_to(int port, int flags) {
    struct sockaddr_in host = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "10.0.2.1", &host.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    CHECK(fd >= 0);
    if (connect(fd, (struct sockaddr *)&host, sizeof host) != 0)
        return -errno - 1000; /* distinguishable from a descriptor */
    return fd;
}

/* The host peer: on PORT a TCP server whose first line picks what it does ("echo\n": echo
 * until EOF; "close\n": close at once), a UDP echo on PORT; nothing on PORT+1. */
static void netpeer_family(int port) {
    char buf[8192];
    /* Refused. */
    CHECK(connect_to(port + 1, 0) == -ECONNREFUSED - 1000);
    /* Echo through every way of sending and receiving. */
    int fd = connect_to(port, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local, remote;
    socklen_t len = sizeof remote;
    CHECK(getpeername(fd, (struct sockaddr *)&remote, &len) == 0 && ntohs(remote.sin_port) == port);
    len = sizeof local;
    CHECK(getsockname(fd, (struct sockaddr *)&local, &len) == 0 && local.sin_addr.s_addr == inet_addr("10.0.2.15"));
    CHECK(write(fd, "echo\n", 5) == 5);
    CHECK(send(fd, "hello", 5, 0) == 5);
    CHECK(recv(fd, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "hello", 5));
    struct iovec out[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    struct msghdr msg = {.msg_iov = out, .msg_iovlen = 3};
    CHECK(sendmsg(fd, &msg, 0) == 6);
    char a[2], b[10];
    struct iovec in[2] = {{a, 2}, {b, 10}};
    struct msghdr rmsg = {.msg_iov = in, .msg_iovlen = 2};
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN));
    int avail = 0;
    while (avail < 6) { /* the echo may come back in pieces */
        CHECK(ioctl(fd, FIONREAD, &avail) == 0);
        if (avail < 6) usleep(10000);
    }
    CHECK(recv(fd, buf, 6, MSG_PEEK) == 6 && !memcmp(buf, "abcdef", 6));
    got = recvmsg(fd, &rmsg, 0);
    CHECK(got == 6 && !memcmp(a, "ab", 2) && !memcmp(b, "cdef", 4) && rmsg.msg_flags == 0);
    /* sendfile: a file's bytes into the connection, echoed back. */
    mkdir("/tmp", 0777);
    int file = open("/tmp/sendfile.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(file >= 0);
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (char)(i * 7);
    CHECK(write(file, buf, sizeof buf) == sizeof buf);
    off_t offset = 100;
    CHECK(sendfile(fd, file, &offset, 5000) == 5000 && offset == 5100);
    CHECK(lseek(file, 0, SEEK_CUR) == sizeof buf); /* with an offset pointer the file offset stays */
    char back[5000];
    CHECK(recv(fd, back, sizeof back, MSG_WAITALL) == sizeof back && !memcmp(back, buf + 100, sizeof back));
    close(file);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    CHECK(read(fd, buf, sizeof buf) == 0); /* the peer echoed the EOF by closing */
    close(fd);
    /* A non-blocking connect: EINPROGRESS, EALREADY (or EISCONN once done), writable when
     * connected, SO_ERROR 0. */
    struct sockaddr_in peer_addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "10.0.2.1", &peer_addr.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    FAILS(connect(fd, (struct sockaddr *)&peer_addr, sizeof peer_addr), EINPROGRESS);
    CHECK(connect(fd, (struct sockaddr *)&peer_addr, sizeof peer_addr) == -1 && (errno == EALREADY || errno == EISCONN));
    p.fd = fd;
    p.events = POLLOUT;
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLOUT));
    int error = -1;
    len = sizeof error;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0);
    /* The peer closes: writes then fail with EPIPE (or ECONNRESET first), SIGPIPE each EPIPE. */
    CHECK(write(fd, "close\n", 6) == 6);
    p.events = POLLIN | POLLRDHUP;
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLRDHUP));
    int flags = fcntl(fd, F_GETFL);
    CHECK(fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0);
    CHECK(read(fd, buf, sizeof buf) == 0);
    signal(SIGPIPE, on_sigpipe);
    int failed = 0;
    for (int i = 0; i < 200 && !failed; i++) {
        if (send(fd, "data", 4, MSG_NOSIGNAL) < 0) {
            CHECK(errno == EPIPE || errno == ECONNRESET);
            failed = 1;
        }
        usleep(10000);
    }
    CHECK(failed && sigpipes == 0);
    errno = 0;
    ssize_t w = write(fd, "data", 4);
    CHECK(w == -1 && (errno == EPIPE || errno == ECONNRESET));
    CHECK(errno == ECONNRESET || sigpipes == 1);
    signal(SIGPIPE, SIG_DFL);
    close(fd);
    /* UDP echo: sendto/recvfrom, then connect + send/recv. */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in host = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "10.0.2.1", &host.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    CHECK(setsockopt(udp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    CHECK(sendto(udp, "datagram", 8, 0, (struct sockaddr *)&host, sizeof host) == 8);
    struct sockaddr_in from;
    len = sizeof from;
    CHECK(recvfrom(udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) == 8 && !memcmp(buf, "datagram", 8));
    CHECK(len == sizeof from && from.sin_port == htons(port) && from.sin_addr.s_addr == host.sin_addr.s_addr);
    CHECK(connect(udp, (struct sockaddr *)&host, sizeof host) == 0);
    CHECK(send(udp, "again", 5, 0) == 5 && recv(udp, buf, sizeof buf, 0) == 5);
    close(udp);
    printf("ok netpeer\n");
}

struct conn {
    int fd;
    char pending[4096];
    size_t pending_len;
};

/* Writes what it can of the connection's pending bytes. */
static void flush_pending(struct conn *c) {
    while (c->pending_len > 0) {
        ssize_t n = write(c->fd, c->pending, c->pending_len);
        if (n < 0) {
            CHECK(errno == EAGAIN);
            return;
        }
        memmove(c->pending, c->pending + n, c->pending_len - n);
        c->pending_len -= n;
    }
}

static void netserve_family(int port, int total) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    CHECK(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(port)};
    CHECK(bind(listener, (struct sockaddr *)&any, sizeof any) == 0);
    CHECK(listen(listener, 1024) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) == 0);
    printf("serving\n");
    fflush(stdout);
    int accepted = 0, closed = 0, events = 0;
    struct epoll_event ready[64];
    while (closed < total) {
        int n = epoll_wait(ep, ready, 64, 60000);
        CHECK(n > 0); /* a minute without events: an event was lost */
        for (int i = 0; i < n; i++) {
            events++;
            struct conn *c = ready[i].data.ptr;
            if (c == NULL) {
                /* Edge-triggered: accept until EAGAIN or this edge is never seen again. */
                for (;;) {
                    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        CHECK(errno == EAGAIN);
                        break;
                    }
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = nc};
                    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) == 0);
                    accepted++;
                }
                continue;
            }
            flush_pending(c);
            int eof = 0;
            while (c->pending_len == 0) {
                ssize_t r = read(c->fd, c->pending, sizeof c->pending);
                if (r < 0) {
                    CHECK(errno == EAGAIN);
                    break;
                }
                if (r == 0) {
                    eof = 1;
                    break;
                }
                c->pending_len = r;
                flush_pending(c);
            }
            if (eof && c->pending_len == 0) {
                close(c->fd); /* also leaves the epoll set */
                free(c);
                closed++;
            }
        }
    }
    CHECK(accepted == total);
    close(ep);
    close(listener);
    printf("served %d connections in %d events\n", closed, events);
}

/* Name resolution as musl does it: /etc/hosts and /etc/services of the default root, and the
 * DNS server of /etc/resolv.conf (the test's, in its namespace: it knows `name` as `expected`
 * and nothing else). */
static void resolve_family(const char *name, const char *expected) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    CHECK(getaddrinfo("localhost", "http", &hints, &res) == 0);
    struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
    CHECK(sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(sin->sin_port) == 80);
    freeaddrinfo(res);
    hints.ai_family = AF_UNSPEC;
    CHECK(getaddrinfo("localhost", NULL, &hints, &res) == 0);
    int families = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) families |= a->ai_family == AF_INET6 ? 2 : 1;
    CHECK(families == 3);
    freeaddrinfo(res);
    struct servent *service = getservbyname("redis", "tcp");
    CHECK(service != NULL && ntohs(service->s_port) == 6379);
    hints.ai_family = AF_INET;
    CHECK(getaddrinfo(name, NULL, &hints, &res) == 0);
    char text[INET_ADDRSTRLEN];
    CHECK(inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof text) != NULL);
    CHECK(!strcmp(text, expected));
    freeaddrinfo(res);
    CHECK(getaddrinfo("no-such-host.libos.test", NULL, &hints, &res) == EAI_NONAME);
    printf("ok resolve\n");
}

int socket_family(const char *f) {
    if (!strcmp(f, "unix")) unix_family();
    else if (!strcmp(f, "net")) net_family();
    else if (!strncmp(f, "netpeer=", 8)) netpeer_family(atoi(f + 8));
    else if (!strncmp(f, "netserve=", 9)) {
        const char *comma = strchr(f, ',');
        CHECK(comma != NULL);
        netserve_family(atoi(f + 9), atoi(comma + 1));
    } else if (!strncmp(f, "resolve=", 8)) {
        char name[256];
        const char *comma = strchr(f, ',');
        CHECK(comma != NULL && comma - f - 8 < (int)sizeof name);
        memcpy(name, f + 8, comma - f - 8);
        name[comma - f - 8] = 0;
        resolve_family(name, comma + 1);
    } else return 0;
    return 1;
}
