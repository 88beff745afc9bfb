#!/usr/bin/python3
"""check-shmem.py: checks the DAX QEMU's SHMEM_MAP / SHMEM_UNMAP handling (tools/qemu-dax).

A fake vhost-user-fs back end: it answers QEMU's set-up messages (never a FUSE request), and
once a guest driver has started the device it sends mapping requests on the backend channel,
as the `vhost` crate does, and reads the window through QEMU's monitor (HMP on a unix socket)
at the address the guest gave BAR 2. The guest hangs in FUSE_INIT meanwhile; the script ends
QEMU with `quit` and exits 0 when every check passed.

Usage (README.md has the whole command):
    check-shmem.py VHOST_SOCKET MONITOR_SOCKET WORKDIR &
    qemu-system-x86_64 ... -monitor unix:MONITOR_SOCKET,server,nowait \
        -chardev socket,id=vfs,path=VHOST_SOCKET \
        -device vhost-user-fs-pci,chardev=vfs,tag=data,cache-size=256M \
        -kernel vfs-share -append "mount=virtiofs:data:/mnt -- stats"
"""
import os, re, socket, struct, sys, threading, time

sock_path, mon_path, work = sys.argv[1:4]
PAGE = 4096
VERSION, REPLY, NEED_REPLY = 0x1, 0x4, 0x8
F_VERSION_1, F_PROTOCOL_FEATURES = 1 << 32, 1 << 30
P_REPLY_ACK, P_BACKEND_REQ, P_BACKEND_SEND_FD, P_SHMEM = 1 << 3, 1 << 5, 1 << 10, 1 << 21
backend = None          # QEMU's backend channel (a socket)
started = threading.Event()
results = []

def log(*a):
    print("[fake]", *a, flush=True)

def recv_msg(s):
    fds = []
    data, anc, _, _ = s.recvmsg(12, socket.CMSG_SPACE(8 * 4))
    if not data:
        return None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
    req, flags, size = struct.unpack("<III", data)
    body = b""
    while len(body) < size:
        body += s.recv(size - len(body))
    return req, flags, body, fds

def reply(s, req, body):
    s.sendall(struct.pack("<III", req, VERSION | REPLY, len(body)) + body)

def serve(conn):
    global backend
    while True:
        m = recv_msg(conn)
        if m is None:
            log("frontend closed")
            return
        req, flags, body, fds = m
        if req == 1:      # GET_FEATURES
            reply(conn, req, struct.pack("<Q", F_VERSION_1 | F_PROTOCOL_FEATURES))
        elif req == 15:   # GET_PROTOCOL_FEATURES
            reply(conn, req, struct.pack("<Q", P_REPLY_ACK | P_BACKEND_REQ | P_BACKEND_SEND_FD | P_SHMEM))
        elif req == 16:   # SET_PROTOCOL_FEATURES
            (pf,) = struct.unpack("<Q", body[:8])
            log(f"protocol features acked: {pf:#x}")
            check("SHMEM negotiated", bool(pf & P_SHMEM))
        elif req == 21:   # SET_BACKEND_REQ_FD
            backend = socket.socket(fileno=fds[0])
            fds = fds[1:]
        elif req == 11:   # GET_VRING_BASE
            reply(conn, req, body[:4] + struct.pack("<I", 0))
        elif req == 36:   # GET_MAX_MEM_SLOTS
            reply(conn, req, struct.pack("<Q", 32))
        elif req == 18:   # SET_VRING_ENABLE
            started.set()
        for fd in fds:
            os.close(fd)
        if flags & NEED_REPLY and req not in (1, 15, 11, 36):
            reply(conn, req, struct.pack("<Q", 0))

def shmem(req, shmid, fd_offset, shm_offset, length, flags, fd=None):
    body = struct.pack("<B7xQQQQ", shmid, fd_offset, shm_offset, length, flags)
    header = struct.pack("<III", req, VERSION | NEED_REPLY, len(body))
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))] if fd is not None else []
    backend.sendmsg([header + body], anc)
    r, f, b, _ = recv_msg(backend)
    (value,) = struct.unpack("<q", b[:8])
    return value

class Monitor:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.read_until_prompt()
    def read_until_prompt(self):
        out = b""
        while not out.endswith(b"(qemu) "):
            out += self.s.recv(65536)
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out.decode(errors="replace"))
    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        return self.read_until_prompt()

def read_window(mon, addr, n=16):
    text = mon.cmd(f"xp /{n}xb {addr:#x}")
    return bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})\b", text.split("\n", 1)[1]))

def check(name, ok):
    results.append((name, ok))
    log(("PASS " if ok else "FAIL ") + name)

def test():
    started.wait(120)
    time.sleep(2)  # let the frontend finish starting the device
    mon = Monitor(mon_path)
    pci = mon.cmd("info pci")
    bar = re.search(r"1af4:105a.*?BAR2: 64 bit prefetchable memory at (0x[0-9a-f]+) \[(0x[0-9a-f]+)\]", pci, re.S)
    if not bar:
        log("BAR2 not assigned:\n" + pci)
        check("BAR2 assigned", False)
        return
    base, last = int(bar.group(1), 16), int(bar.group(2), 16)
    log(f"window at {base:#x}..{last:#x} ({(last - base + 1) >> 20} MiB)")
    check("BAR2 is 256 MiB", last - base + 1 == 256 << 20)
    ro = os.path.join(work, "ro.bin")
    with open(ro, "wb") as f:
        f.write(bytes([0x11]) * PAGE + b"DAX-RO-PAGE-1\0\0\0" + bytes(PAGE - 16))
    rw = os.path.join(work, "rw.bin")
    with open(rw, "wb") as f:
        f.write(b"DAX-RW-BEFORE\0\0\0" + bytes(2 * PAGE - 16))
    check("empty window reads zeros", read_window(mon, base + (1 << 20)) == bytes(16))
    fd = os.open(ro, os.O_RDONLY)
    # Read-only map of the file's second page at window offset 1 MiB.
    check("MAP read-only -> 0", shmem(9, 0, PAGE, 1 << 20, PAGE, 0, fd) == 0)
    check("guest sees the file", read_window(mon, base + (1 << 20)) == b"DAX-RO-PAGE-1\0\0\0")
    check("MAP bad shmid -> error", shmem(9, 1, 0, 0, PAGE, 0, fd) < 0)
    check("MAP unaligned -> error", shmem(9, 0, 0, 100, PAGE, 0, fd) < 0)
    check("MAP past the window -> error", shmem(9, 0, 0, 256 << 20, PAGE, 0, fd) < 0)
    check("MAP len 0 -> error", shmem(9, 0, 0, 0, 0, 0, fd) < 0)
    check("MAP bad flags -> error", shmem(9, 0, 0, 0, PAGE, 2, fd) < 0)
    check("MAP without fd -> error", shmem(9, 0, 0, 0, PAGE, 0) < 0)
    os.close(fd)
    fd = os.open(rw, os.O_RDWR)
    check("MAP writable -> 0", shmem(9, 0, 0, 2 << 20, 2 * PAGE, 1, fd) == 0)
    os.close(fd)
    check("guest sees the rw file", read_window(mon, base + (2 << 20)) == b"DAX-RW-BEFORE\0\0\0")
    with open(rw, "r+b") as f:
        f.write(b"DAX-RW-AFTER!")
    check("shared: host write shows in the window", read_window(mon, base + (2 << 20))[:13] == b"DAX-RW-AFTER!")
    check("UNMAP -> 0", shmem(10, 0, 0, 1 << 20, PAGE, 0) == 0)
    check("unmapped range reads zeros", read_window(mon, base + (1 << 20)) == bytes(16))
    check("UNMAP past the window -> error", shmem(10, 0, 0, 255 << 20, 2 << 20, 0) < 0)
    check("the rw mapping is still there", read_window(mon, base + (2 << 20))[:13] == b"DAX-RW-AFTER!")
    mon.cmd("info mtree -f")
    log("done: %d/%d passed" % (sum(ok for _, ok in results), len(results)))
    mon.s.sendall(b"quit\n")

srv = socket.socket(socket.AF_UNIX)
if os.path.exists(sock_path):
    os.unlink(sock_path)
srv.bind(sock_path)
srv.listen(1)
log("listening on", sock_path)
conn, _ = srv.accept()
threading.Thread(target=test, daemon=True).start()
serve(conn)
time.sleep(0.5)
sys.exit(0 if results and all(ok for _, ok in results) else 1)
