//! The Linux ABI of the image's architecture: system-call numbers, flag bits, and the layouts
//! of the structures system calls exchange.
//!
//! Numbers differ between x86_64 (its own historical table) and aarch64 (the generic table,
//! without the legacy calls such as `open`, `stat`, `pipe`, `poll`). A call the architecture
//! lacks gets a number no real call uses ([`nr::ABSENT`] and above), so the dispatch table
//! is one `match` for both.

/// System-call numbers.
#[allow(missing_docs)]
pub mod nr {
    /// Numbers from here up are "this architecture has no such call".
    pub const ABSENT: u64 = 1 << 32;

    #[cfg(not(target_arch = "aarch64"))]
    mod table {
        pub const READ: u64 = 0;
        pub const WRITE: u64 = 1;
        pub const OPEN: u64 = 2;
        pub const CLOSE: u64 = 3;
        pub const STAT: u64 = 4;
        pub const FSTAT: u64 = 5;
        pub const LSTAT: u64 = 6;
        pub const POLL: u64 = 7;
        pub const LSEEK: u64 = 8;
        pub const MMAP: u64 = 9;
        pub const MPROTECT: u64 = 10;
        pub const MUNMAP: u64 = 11;
        pub const BRK: u64 = 12;
        pub const RT_SIGACTION: u64 = 13;
        pub const RT_SIGPROCMASK: u64 = 14;
        pub const RT_SIGRETURN: u64 = 15;
        pub const PAUSE: u64 = 34;
        pub const RT_SIGPENDING: u64 = 127;
        pub const RT_SIGTIMEDWAIT: u64 = 128;
        pub const RT_SIGSUSPEND: u64 = 130;
        pub const IOCTL: u64 = 16;
        pub const PREAD64: u64 = 17;
        pub const PWRITE64: u64 = 18;
        pub const READV: u64 = 19;
        pub const WRITEV: u64 = 20;
        pub const ACCESS: u64 = 21;
        pub const PIPE: u64 = 22;
        pub const SCHED_YIELD: u64 = 24;
        pub const MREMAP: u64 = 25;
        pub const MSYNC: u64 = 26;
        pub const MADVISE: u64 = 28;
        pub const DUP: u64 = 32;
        pub const DUP2: u64 = 33;
        pub const NANOSLEEP: u64 = 35;
        pub const GETPID: u64 = 39;
        pub const CLONE: u64 = 56;
        pub const FORK: u64 = 57;
        pub const VFORK: u64 = 58;
        pub const EXECVE: u64 = 59;
        pub const EXIT: u64 = 60;
        pub const WAIT4: u64 = 61;
        pub const WAITID: u64 = 247;
        pub const RSEQ: u64 = 334;
        pub const KILL: u64 = 62;
        pub const UNAME: u64 = 63;
        pub const FCNTL: u64 = 72;
        pub const FSYNC: u64 = 74;
        pub const FDATASYNC: u64 = 75;
        pub const TRUNCATE: u64 = 76;
        pub const FTRUNCATE: u64 = 77;
        pub const GETCWD: u64 = 79;
        pub const CHDIR: u64 = 80;
        pub const FCHDIR: u64 = 81;
        pub const RENAME: u64 = 82;
        pub const MKDIR: u64 = 83;
        pub const RMDIR: u64 = 84;
        pub const LINK: u64 = 86;
        pub const UNLINK: u64 = 87;
        pub const SYMLINK: u64 = 88;
        pub const READLINK: u64 = 89;
        pub const UMASK: u64 = 95;
        pub const GETTIMEOFDAY: u64 = 96;
        pub const SYSINFO: u64 = 99;
        pub const GETUID: u64 = 102;
        pub const GETGID: u64 = 104;
        pub const GETEUID: u64 = 107;
        pub const GETEGID: u64 = 108;
        pub const GETPPID: u64 = 110;
        pub const SIGALTSTACK: u64 = 131;
        pub const STATFS: u64 = 137;
        pub const GETRUSAGE: u64 = 98;
        pub const TIMES: u64 = 100;
        pub const SETPGID: u64 = 109;
        pub const GETPGRP: u64 = 111;
        pub const SETSID: u64 = 112;
        pub const GETPGID: u64 = 121;
        pub const GETSID: u64 = 124;
        pub const GETPRIORITY: u64 = 140;
        pub const SETPRIORITY: u64 = 141;
        pub const SCHED_GETPARAM: u64 = 143;
        pub const SCHED_GETSCHEDULER: u64 = 145;
        pub const MLOCK: u64 = 149;
        pub const MUNLOCK: u64 = 150;
        pub const MLOCKALL: u64 = 151;
        pub const MUNLOCKALL: u64 = 152;
        pub const GETCPU: u64 = 309;
        pub const FSTATFS: u64 = 138;
        pub const SYNC: u64 = 162;
        pub const MOUNT: u64 = 165;
        pub const UMOUNT2: u64 = 166;
        pub const SETXATTR: u64 = 188;
        pub const LSETXATTR: u64 = 189;
        pub const FSETXATTR: u64 = 190;
        pub const GETXATTR: u64 = 191;
        pub const LGETXATTR: u64 = 192;
        pub const FGETXATTR: u64 = 193;
        pub const LISTXATTR: u64 = 194;
        pub const LLISTXATTR: u64 = 195;
        pub const FLISTXATTR: u64 = 196;
        pub const REMOVEXATTR: u64 = 197;
        pub const LREMOVEXATTR: u64 = 198;
        pub const FREMOVEXATTR: u64 = 199;
        pub const FADVISE64: u64 = 221;
        pub const SYNCFS: u64 = 306;
        pub const ARCH_PRCTL: u64 = 158;
        pub const GETTID: u64 = 186;
        pub const TKILL: u64 = 200;
        pub const TIME: u64 = 201;
        pub const FUTEX: u64 = 202;
        pub const SCHED_SETAFFINITY: u64 = 203;
        pub const SCHED_GETAFFINITY: u64 = 204;
        pub const GETDENTS64: u64 = 217;
        pub const SET_TID_ADDRESS: u64 = 218;
        pub const CLOCK_SETTIME: u64 = 227;
        pub const CLOCK_GETTIME: u64 = 228;
        pub const CLOCK_GETRES: u64 = 229;
        pub const CLOCK_NANOSLEEP: u64 = 230;
        pub const EXIT_GROUP: u64 = 231;
        pub const TGKILL: u64 = 234;
        pub const OPENAT: u64 = 257;
        pub const MKDIRAT: u64 = 258;
        pub const NEWFSTATAT: u64 = 262;
        pub const UNLINKAT: u64 = 263;
        pub const RENAMEAT: u64 = 264;
        pub const LINKAT: u64 = 265;
        pub const SYMLINKAT: u64 = 266;
        pub const READLINKAT: u64 = 267;
        pub const FCHMODAT: u64 = 268;
        pub const FACCESSAT: u64 = 269;
        pub const PPOLL: u64 = 271;
        pub const SET_ROBUST_LIST: u64 = 273;
        pub const UTIMENSAT: u64 = 280;
        pub const DUP3: u64 = 292;
        pub const EVENTFD2: u64 = 290;
        pub const SELECT: u64 = 23;
        pub const PSELECT6: u64 = 270;
        pub const EPOLL_CREATE: u64 = 213;
        pub const EPOLL_CREATE1: u64 = 291;
        pub const EPOLL_CTL: u64 = 233;
        pub const EPOLL_WAIT: u64 = 232;
        pub const EPOLL_PWAIT: u64 = 281;
        pub const TIMERFD_CREATE: u64 = 283;
        pub const TIMERFD_SETTIME: u64 = 286;
        pub const TIMERFD_GETTIME: u64 = 287;
        pub const PIPE2: u64 = 293;
        pub const PRLIMIT64: u64 = 302;
        pub const RENAMEAT2: u64 = 316;
        pub const GETRANDOM: u64 = 318;
        pub const STATX: u64 = 332;
        // Ownership, modes, device nodes, credentials, locks, space (issue 18).
        pub const CHMOD: u64 = 90;
        pub const FCHMOD: u64 = 91;
        pub const CHOWN: u64 = 92;
        pub const FCHOWN: u64 = 93;
        pub const LCHOWN: u64 = 94;
        pub const FCHOWNAT: u64 = 260;
        pub const FCHMODAT2: u64 = 452;
        pub const MKNOD: u64 = 133;
        pub const MKNODAT: u64 = 259;
        pub const GETGROUPS: u64 = 115;
        pub const SETGROUPS: u64 = 116;
        pub const SETUID: u64 = 105;
        pub const SETGID: u64 = 106;
        pub const SETREUID: u64 = 113;
        pub const SETREGID: u64 = 114;
        pub const SETRESUID: u64 = 117;
        pub const GETRESUID: u64 = 118;
        pub const SETRESGID: u64 = 119;
        pub const GETRESGID: u64 = 120;
        pub const SETFSUID: u64 = 122;
        pub const SETFSGID: u64 = 123;
        pub const CAPGET: u64 = 125;
        pub const CAPSET: u64 = 126;
        pub const FLOCK: u64 = 73;
        pub const FALLOCATE: u64 = 285;
        pub const COPY_FILE_RANGE: u64 = 326;
        pub const FACCESSAT2: u64 = 439;
        // Sockets.
        pub const SENDFILE: u64 = 40;
        pub const SOCKET: u64 = 41;
        pub const CONNECT: u64 = 42;
        pub const ACCEPT: u64 = 43;
        pub const SENDTO: u64 = 44;
        pub const RECVFROM: u64 = 45;
        pub const SENDMSG: u64 = 46;
        pub const RECVMSG: u64 = 47;
        pub const SHUTDOWN: u64 = 48;
        pub const BIND: u64 = 49;
        pub const LISTEN: u64 = 50;
        pub const GETSOCKNAME: u64 = 51;
        pub const GETPEERNAME: u64 = 52;
        pub const SOCKETPAIR: u64 = 53;
        pub const SETSOCKOPT: u64 = 54;
        pub const GETSOCKOPT: u64 = 55;
        pub const ACCEPT4: u64 = 288;
        pub const PRCTL: u64 = 157;
        pub const RECVMMSG: u64 = 299;
        pub const SENDMMSG: u64 = 307;
        pub const GETITIMER: u64 = 36;
        pub const ALARM: u64 = 37;
        pub const SETITIMER: u64 = 38;
        pub const TIMER_CREATE: u64 = 222;
        pub const TIMER_SETTIME: u64 = 223;
        pub const TIMER_GETTIME: u64 = 224;
        pub const TIMER_GETOVERRUN: u64 = 225;
        pub const TIMER_DELETE: u64 = 226;
    }

    #[cfg(target_arch = "aarch64")]
    mod table {
        use super::ABSENT;
        pub const GETCWD: u64 = 17;
        pub const EVENTFD2: u64 = 19;
        pub const EPOLL_CREATE1: u64 = 20;
        pub const EPOLL_CTL: u64 = 21;
        pub const EPOLL_PWAIT: u64 = 22;
        pub const PSELECT6: u64 = 72;
        pub const TIMERFD_CREATE: u64 = 85;
        pub const TIMERFD_SETTIME: u64 = 86;
        pub const TIMERFD_GETTIME: u64 = 87;
        pub const SELECT: u64 = ABSENT + 17;
        pub const EPOLL_CREATE: u64 = ABSENT + 18;
        pub const EPOLL_WAIT: u64 = ABSENT + 19;
        pub const DUP: u64 = 23;
        pub const DUP3: u64 = 24;
        pub const FCNTL: u64 = 25;
        pub const IOCTL: u64 = 29;
        pub const MKDIRAT: u64 = 34;
        pub const UNLINKAT: u64 = 35;
        pub const SYMLINKAT: u64 = 36;
        pub const LINKAT: u64 = 37;
        pub const RENAMEAT: u64 = 38;
        pub const STATFS: u64 = 43;
        pub const SCHED_GETSCHEDULER: u64 = 120;
        pub const SCHED_GETPARAM: u64 = 121;
        pub const SETPRIORITY: u64 = 140;
        pub const GETPRIORITY: u64 = 141;
        pub const TIMES: u64 = 153;
        pub const SETPGID: u64 = 154;
        pub const GETPGID: u64 = 155;
        pub const GETSID: u64 = 156;
        pub const SETSID: u64 = 157;
        pub const GETRUSAGE: u64 = 165;
        pub const GETCPU: u64 = 168;
        pub const MLOCK: u64 = 228;
        pub const MUNLOCK: u64 = 229;
        pub const MLOCKALL: u64 = 230;
        pub const MUNLOCKALL: u64 = 231;
        pub const SETXATTR: u64 = 5;
        pub const LSETXATTR: u64 = 6;
        pub const FSETXATTR: u64 = 7;
        pub const GETXATTR: u64 = 8;
        pub const LGETXATTR: u64 = 9;
        pub const FGETXATTR: u64 = 10;
        pub const LISTXATTR: u64 = 11;
        pub const LLISTXATTR: u64 = 12;
        pub const FLISTXATTR: u64 = 13;
        pub const REMOVEXATTR: u64 = 14;
        pub const LREMOVEXATTR: u64 = 15;
        pub const FREMOVEXATTR: u64 = 16;
        pub const FSTATFS: u64 = 44;
        pub const SYNC: u64 = 81;
        pub const MOUNT: u64 = 40;
        pub const UMOUNT2: u64 = 39;
        pub const FADVISE64: u64 = 223;
        pub const SYNCFS: u64 = 267;
        pub const TRUNCATE: u64 = 45;
        pub const FTRUNCATE: u64 = 46;
        pub const FACCESSAT: u64 = 48;
        pub const CHDIR: u64 = 49;
        pub const FCHDIR: u64 = 50;
        pub const FCHMODAT: u64 = 53;
        pub const OPENAT: u64 = 56;
        pub const CLOSE: u64 = 57;
        pub const PIPE2: u64 = 59;
        pub const GETDENTS64: u64 = 61;
        pub const LSEEK: u64 = 62;
        pub const READ: u64 = 63;
        pub const WRITE: u64 = 64;
        pub const READV: u64 = 65;
        pub const WRITEV: u64 = 66;
        pub const PREAD64: u64 = 67;
        pub const PWRITE64: u64 = 68;
        pub const PPOLL: u64 = 73;
        pub const READLINKAT: u64 = 78;
        pub const NEWFSTATAT: u64 = 79;
        pub const FSTAT: u64 = 80;
        pub const FSYNC: u64 = 82;
        pub const FDATASYNC: u64 = 83;
        pub const UTIMENSAT: u64 = 88;
        pub const EXIT: u64 = 93;
        pub const EXIT_GROUP: u64 = 94;
        pub const SET_TID_ADDRESS: u64 = 96;
        pub const FUTEX: u64 = 98;
        pub const SET_ROBUST_LIST: u64 = 99;
        pub const NANOSLEEP: u64 = 101;
        pub const CLOCK_SETTIME: u64 = 112;
        pub const CLOCK_GETTIME: u64 = 113;
        pub const CLOCK_GETRES: u64 = 114;
        pub const CLOCK_NANOSLEEP: u64 = 115;
        pub const SCHED_SETAFFINITY: u64 = 122;
        pub const SCHED_GETAFFINITY: u64 = 123;
        pub const SCHED_YIELD: u64 = 124;
        pub const KILL: u64 = 129;
        pub const TKILL: u64 = 130;
        pub const TGKILL: u64 = 131;
        pub const SIGALTSTACK: u64 = 132;
        pub const RT_SIGACTION: u64 = 134;
        pub const RT_SIGPROCMASK: u64 = 135;
        pub const RT_SIGPENDING: u64 = 136;
        pub const RT_SIGTIMEDWAIT: u64 = 137;
        pub const RT_SIGRETURN: u64 = 139;
        pub const RT_SIGSUSPEND: u64 = 133;
        pub const UNAME: u64 = 160;
        pub const UMASK: u64 = 166;
        pub const GETTIMEOFDAY: u64 = 169;
        pub const GETPID: u64 = 172;
        pub const GETPPID: u64 = 173;
        pub const GETUID: u64 = 174;
        pub const GETEUID: u64 = 175;
        pub const GETGID: u64 = 176;
        pub const GETEGID: u64 = 177;
        pub const GETTID: u64 = 178;
        pub const SYSINFO: u64 = 179;
        pub const BRK: u64 = 214;
        pub const MUNMAP: u64 = 215;
        pub const MREMAP: u64 = 216;
        pub const CLONE: u64 = 220;
        pub const EXECVE: u64 = 221;
        pub const MMAP: u64 = 222;
        pub const MPROTECT: u64 = 226;
        pub const MSYNC: u64 = 227;
        pub const MADVISE: u64 = 233;
        pub const WAIT4: u64 = 260;
        pub const WAITID: u64 = 95;
        pub const RSEQ: u64 = 293;
        pub const PRLIMIT64: u64 = 261;
        pub const RENAMEAT2: u64 = 276;
        pub const GETRANDOM: u64 = 278;
        pub const STATX: u64 = 291;
        // Ownership, modes, device nodes, credentials, locks, space (issue 18).
        pub const CHMOD: u64 = ABSENT + 23;
        pub const FCHMOD: u64 = 52;
        pub const CHOWN: u64 = ABSENT + 24;
        pub const FCHOWN: u64 = 55;
        pub const LCHOWN: u64 = ABSENT + 25;
        pub const FCHOWNAT: u64 = 54;
        pub const FCHMODAT2: u64 = 452;
        pub const MKNOD: u64 = ABSENT + 26;
        pub const MKNODAT: u64 = 33;
        pub const GETGROUPS: u64 = 158;
        pub const SETGROUPS: u64 = 159;
        pub const SETUID: u64 = 146;
        pub const SETGID: u64 = 144;
        pub const SETREUID: u64 = 145;
        pub const SETREGID: u64 = 143;
        pub const SETRESUID: u64 = 147;
        pub const GETRESUID: u64 = 148;
        pub const SETRESGID: u64 = 149;
        pub const GETRESGID: u64 = 150;
        pub const SETFSUID: u64 = 151;
        pub const SETFSGID: u64 = 152;
        pub const CAPGET: u64 = 90;
        pub const CAPSET: u64 = 91;
        pub const FLOCK: u64 = 32;
        pub const FALLOCATE: u64 = 47;
        pub const COPY_FILE_RANGE: u64 = 285;
        pub const FACCESSAT2: u64 = 439;
        // Sockets.
        pub const SENDFILE: u64 = 71;
        pub const SOCKET: u64 = 198;
        pub const SOCKETPAIR: u64 = 199;
        pub const BIND: u64 = 200;
        pub const LISTEN: u64 = 201;
        pub const ACCEPT: u64 = 202;
        pub const CONNECT: u64 = 203;
        pub const GETSOCKNAME: u64 = 204;
        pub const GETPEERNAME: u64 = 205;
        pub const SENDTO: u64 = 206;
        pub const RECVFROM: u64 = 207;
        pub const SETSOCKOPT: u64 = 208;
        pub const GETSOCKOPT: u64 = 209;
        pub const SHUTDOWN: u64 = 210;
        pub const SENDMSG: u64 = 211;
        pub const RECVMSG: u64 = 212;
        pub const ACCEPT4: u64 = 242;
        pub const PRCTL: u64 = 167;
        pub const RECVMMSG: u64 = 243;
        pub const SENDMMSG: u64 = 269;
        pub const GETITIMER: u64 = 102;
        pub const SETITIMER: u64 = 103;
        pub const TIMER_CREATE: u64 = 107;
        pub const TIMER_GETTIME: u64 = 108;
        pub const TIMER_GETOVERRUN: u64 = 109;
        pub const TIMER_SETTIME: u64 = 110;
        pub const TIMER_DELETE: u64 = 111;
        // The legacy calls aarch64 does not have.
        pub const OPEN: u64 = ABSENT;
        pub const STAT: u64 = ABSENT + 1;
        pub const LSTAT: u64 = ABSENT + 2;
        pub const POLL: u64 = ABSENT + 3;
        pub const ACCESS: u64 = ABSENT + 4;
        pub const PIPE: u64 = ABSENT + 5;
        pub const DUP2: u64 = ABSENT + 6;
        pub const FORK: u64 = ABSENT + 7;
        pub const VFORK: u64 = ABSENT + 8;
        pub const RENAME: u64 = ABSENT + 9;
        pub const MKDIR: u64 = ABSENT + 10;
        pub const RMDIR: u64 = ABSENT + 11;
        pub const LINK: u64 = ABSENT + 12;
        pub const UNLINK: u64 = ABSENT + 13;
        pub const SYMLINK: u64 = ABSENT + 14;
        pub const READLINK: u64 = ABSENT + 15;
        pub const ARCH_PRCTL: u64 = ABSENT + 16;
        pub const PAUSE: u64 = ABSENT + 21;
        pub const TIME: u64 = ABSENT + 20;
        pub const ALARM: u64 = ABSENT + 22;
        pub const GETPGRP: u64 = ABSENT + 27;
    }

    pub use table::*;

    /// The name of a call, for the log line about an unknown or unsupported one.
    pub fn name(number: u64) -> &'static str {
        match number {
            n if n == FORK => "fork",
            n if n == VFORK => "vfork",
            n if n == EXECVE => "execve",
            n if n == WAIT4 => "wait4",
            // glibc registers restartable sequences at start-up and carries on without them.
            n if n == RSEQ => "rseq",
            _ => "?",
        }
    }
}

/// `open` flags: the VFS uses x86_64's bit values; aarch64 moves four of them.
#[allow(missing_docs)]
pub mod open_flags {
    pub const ACCMODE: u32 = 0o3;
    pub const CREAT: u32 = 0o100;
    pub const EXCL: u32 = 0o200;
    pub const NOCTTY: u32 = 0o400;
    pub const TRUNC: u32 = 0o1000;
    pub const APPEND: u32 = 0o2000;
    pub const NONBLOCK: u32 = 0o4000;
    pub const DSYNC: u32 = 0o10000;
    pub const SYNC: u32 = 0o4010000;
    pub const CLOEXEC: u32 = 0o2000000;
    pub const PATH: u32 = 0o10000000;
    /// `__O_TMPFILE`, the bit of its own in `O_TMPFILE` (which is it and `O_DIRECTORY`).
    pub const TMPFILE: u32 = 0o20000000;
    #[cfg(not(target_arch = "aarch64"))]
    mod arch {
        pub const DIRECTORY: u32 = 0o200000;
        pub const NOFOLLOW: u32 = 0o400000;
        pub const DIRECT: u32 = 0o40000;
        pub const LARGEFILE: u32 = 0o100000;
    }
    #[cfg(target_arch = "aarch64")]
    mod arch {
        pub const DIRECTORY: u32 = 0o40000;
        pub const NOFOLLOW: u32 = 0o100000;
        pub const DIRECT: u32 = 0o200000;
        pub const LARGEFILE: u32 = 0o400000;
    }
    pub use arch::*;
    /// Every bit this shim understands (anything else is `EINVAL`).
    pub const KNOWN: u32 = ACCMODE | CREAT | EXCL | NOCTTY | TRUNC | APPEND | NONBLOCK | SYNC | CLOEXEC | PATH
        | TMPFILE | DIRECTORY | NOFOLLOW | DIRECT | LARGEFILE;
}

/// Auxiliary-vector keys (`<elf.h>`).
#[allow(missing_docs)]
pub mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
}

/// An ELF64 program header (`Elf64_Phdr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// `PT_TLS`.
pub const PT_TLS: u32 = 7;
/// `PT_GNU_STACK`.
pub const PT_GNU_STACK: u32 = 0x6474_e551;

/// `struct stat` of the architecture.
#[cfg(not(target_arch = "aarch64"))]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub pad0: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub unused: [i64; 3],
}

/// `struct stat` of the architecture.
#[cfg(target_arch = "aarch64")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_mode: u32,
    pub st_nlink: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub st_rdev: u64,
    pub pad1: u64,
    pub st_size: i64,
    pub st_blksize: i32,
    pub pad2: i32,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub unused: [u32; 2],
}

#[cfg(not(target_arch = "aarch64"))]
const _: () = assert!(size_of::<Stat>() == 144);
#[cfg(target_arch = "aarch64")]
const _: () = assert!(size_of::<Stat>() == 128);

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}


/// `struct utsname`: six fields of 65 bytes.
pub const UTSNAME_FIELD: usize = 65;

/// The `machine` field of `uname`, and `AT_PLATFORM`.
#[cfg(not(target_arch = "aarch64"))]
pub const MACHINE: &str = "x86_64";
/// The `machine` field of `uname`, and `AT_PLATFORM`.
#[cfg(target_arch = "aarch64")]
pub const MACHINE: &str = "aarch64";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_one_arch_are_distinct() {
        let all = [
            nr::READ, nr::WRITE, nr::OPEN, nr::CLOSE, nr::STAT, nr::FSTAT, nr::LSTAT, nr::POLL, nr::LSEEK, nr::MMAP,
            nr::MPROTECT, nr::MUNMAP, nr::BRK, nr::RT_SIGACTION, nr::RT_SIGPROCMASK, nr::IOCTL, nr::PREAD64,
            nr::PWRITE64, nr::READV, nr::WRITEV, nr::ACCESS, nr::PIPE, nr::SCHED_YIELD, nr::MREMAP, nr::MSYNC,
            nr::MADVISE, nr::DUP, nr::DUP2, nr::NANOSLEEP, nr::GETPID, nr::CLONE, nr::FORK, nr::VFORK, nr::EXECVE,
            nr::EXIT, nr::WAIT4, nr::KILL, nr::UNAME, nr::FCNTL, nr::FSYNC, nr::FDATASYNC, nr::TRUNCATE, nr::FTRUNCATE,
            nr::GETCWD, nr::CHDIR, nr::FCHDIR, nr::GETRUSAGE, nr::TIMES, nr::SETPGID, nr::GETPGRP, nr::SETSID, nr::GETPGID,
            nr::GETSID, nr::GETPRIORITY, nr::SETPRIORITY, nr::SCHED_GETPARAM, nr::SCHED_GETSCHEDULER, nr::MLOCK, nr::MUNLOCK,
            nr::MLOCKALL, nr::MUNLOCKALL, nr::GETCPU, nr::FSTATFS, nr::SYNC, nr::SYNCFS, nr::FADVISE64, nr::SETXATTR, nr::LSETXATTR,
            nr::FSETXATTR, nr::GETXATTR, nr::LGETXATTR, nr::FGETXATTR, nr::LISTXATTR, nr::LLISTXATTR, nr::FLISTXATTR,
            nr::REMOVEXATTR, nr::LREMOVEXATTR, nr::FREMOVEXATTR, nr::RENAME, nr::MKDIR, nr::RMDIR, nr::LINK, nr::UNLINK, nr::SYMLINK,
            nr::READLINK, nr::UMASK, nr::GETTIMEOFDAY, nr::SYSINFO, nr::GETUID, nr::GETGID, nr::GETEUID,
            nr::GETEGID, nr::GETPPID, nr::SIGALTSTACK, nr::STATFS, nr::ARCH_PRCTL, nr::GETTID, nr::TKILL,
            nr::FUTEX, nr::SCHED_SETAFFINITY, nr::SCHED_GETAFFINITY, nr::GETDENTS64, nr::SET_TID_ADDRESS, nr::CLOCK_GETTIME,
            nr::CLOCK_GETRES, nr::CLOCK_NANOSLEEP, nr::EXIT_GROUP, nr::TGKILL, nr::OPENAT, nr::MKDIRAT,
            nr::NEWFSTATAT, nr::UNLINKAT, nr::RENAMEAT, nr::LINKAT, nr::SYMLINKAT, nr::READLINKAT, nr::FCHMODAT,
            nr::FACCESSAT, nr::PPOLL, nr::SET_ROBUST_LIST, nr::UTIMENSAT, nr::DUP3, nr::PIPE2, nr::PRLIMIT64,
            nr::RENAMEAT2, nr::GETRANDOM, nr::STATX, nr::FACCESSAT2, nr::EVENTFD2, nr::SELECT, nr::PSELECT6, nr::EPOLL_CREATE,
            nr::EPOLL_CREATE1, nr::EPOLL_CTL, nr::EPOLL_WAIT, nr::EPOLL_PWAIT, nr::TIMERFD_CREATE, nr::TIMERFD_SETTIME,
            nr::TIMERFD_GETTIME, nr::RT_SIGRETURN, nr::RT_SIGPENDING, nr::RT_SIGTIMEDWAIT, nr::RT_SIGSUSPEND, nr::PAUSE, nr::CLOCK_SETTIME, nr::TIME,
            nr::GETITIMER, nr::ALARM, nr::SETITIMER, nr::TIMER_CREATE, nr::TIMER_SETTIME, nr::TIMER_GETTIME,
            nr::TIMER_GETOVERRUN, nr::TIMER_DELETE, nr::CHMOD, nr::FCHMOD, nr::CHOWN, nr::FCHOWN, nr::LCHOWN,
            nr::FCHOWNAT, nr::FCHMODAT2, nr::MKNOD, nr::MKNODAT, nr::GETGROUPS, nr::SETGROUPS, nr::SETUID, nr::SETGID,
            nr::SETREUID, nr::SETREGID, nr::SETRESUID, nr::GETRESUID, nr::SETRESGID, nr::GETRESGID, nr::SETFSUID,
            nr::SETFSGID, nr::CAPGET, nr::CAPSET, nr::FLOCK, nr::FALLOCATE, nr::COPY_FILE_RANGE,
        ];
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }

    #[test]
    fn known_open_flags_include_the_arch_bits() {
        assert_eq!(open_flags::KNOWN & open_flags::DIRECTORY, open_flags::DIRECTORY);
        assert_eq!(open_flags::KNOWN & open_flags::TMPFILE, open_flags::TMPFILE);
    }
}
