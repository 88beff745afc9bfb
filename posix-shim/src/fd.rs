//! The file-descriptor table: one per program, shared by all its threads (as `CLONE_FILES`
//! threads share it on Linux). Descriptors 0, 1 and 2 are the console at start.
//!
//! A descriptor holds an [`Object`] (behind an `Arc`, so `dup` shares the offset as Linux
//! does) and its own close-on-exec flag. The table lock is held only to look up, insert or
//! remove, never across I/O, so a blocking read does not stall other threads' `open`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::sync::Mutex;
use libos::{Errno, Result};

/// What a descriptor refers to.
pub enum Object {
    /// The platform console: writes print, reads see end of file (libos has no console input).
    Console,
    /// One end of a pipe.
    Pipe(crate::events::PipeEnd),
    /// An `eventfd` counter.
    Event(crate::events::EventCounter),
    /// A `timerfd`.
    Timer(crate::events::Timer),
    /// An epoll instance.
    Epoll(crate::events::Epoll),
    /// A socket (`AF_UNIX` always; `AF_INET`/`AF_INET6` with the `net` feature).
    Socket(crate::net::Socket),
    /// A file or directory of the VFS (an open directory is where `*at` calls through it start).
    #[cfg(feature = "fs")]
    File(libos::fs::vfs::OpenFile),
}

/// The open file description goes away with its last descriptor: its `flock` locks with it.
#[cfg(feature = "fs")]
impl Drop for Object {
    fn drop(&mut self) {
        crate::locks::description_closed(self);
        crate::shared_offset::closed(self);
    }
}

impl Object {
    /// Reads at the current offset.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Object::Console => {
                let _ = buf;
                Ok(0)
            }
            Object::Pipe(end) => end.read(buf),
            Object::Event(counter) => counter.read(buf),
            Object::Timer(timer) => timer.read(buf),
            Object::Epoll(_) => Err(Errno::EINVAL),
            Object::Socket(socket) => socket.read(buf),
            #[cfg(feature = "fs")]
            Object::File(file) => crate::shared_offset::around(self, file, || file.read(buf)),
        }
    }

    /// Writes at the current offset (or the end, with `O_APPEND`).
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        match self {
            Object::Console => {
                libos::console::write_bytes(buf);
                Ok(buf.len())
            }
            Object::Pipe(end) => end.write(buf),
            Object::Event(counter) => counter.write(buf),
            Object::Timer(_) | Object::Epoll(_) => Err(Errno::EINVAL),
            Object::Socket(socket) => socket.write(buf),
            #[cfg(feature = "fs")]
            Object::File(file) => crate::shared_offset::around(self, file, || file.write(buf)),
        }
    }

    /// Reads at `offset` without moving the offset.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self {
            Object::Console | Object::Pipe(_) | Object::Event(_) | Object::Timer(_) | Object::Epoll(_) | Object::Socket(_) => {
                let _ = (offset, buf);
                Err(Errno::ESPIPE)
            }
            #[cfg(feature = "fs")]
            Object::File(file) => file.read_at(offset, buf),
        }
    }

    /// Writes at `offset` without moving the offset.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        match self {
            Object::Console | Object::Pipe(_) | Object::Event(_) | Object::Timer(_) | Object::Epoll(_) | Object::Socket(_) => {
                let _ = (offset, buf);
                Err(Errno::ESPIPE)
            }
            #[cfg(feature = "fs")]
            Object::File(file) => file.write_at(offset, buf),
        }
    }

    /// The size of a regular file (`None` for other objects).
    pub fn file_size(&self) -> Result<Option<u64>> {
        match self {
            Object::Console | Object::Pipe(_) | Object::Event(_) | Object::Timer(_) | Object::Epoll(_) | Object::Socket(_) => Ok(None),
            #[cfg(feature = "fs")]
            Object::File(file) => Ok(Some(file.metadata()?.size)),
        }
    }

    /// Sets `O_NONBLOCK` (`fcntl(F_SETFL)`, `ioctl(FIONBIO)`): calls that would wait fail with
    /// `EAGAIN` instead. Kept by every kind of object (regular files ignore it, as on Linux).
    pub fn set_nonblocking(&self, on: bool) {
        match self {
            Object::Console | Object::Epoll(_) => {}
            Object::Pipe(end) => end.set_nonblocking(on),
            Object::Event(counter) => counter.set_nonblocking(on),
            Object::Timer(timer) => timer.set_nonblocking(on),
            Object::Socket(socket) => socket.set_nonblocking(on),
            #[cfg(feature = "fs")]
            Object::File(file) => {
                let flag = libos::fs::vfs::OpenFlags::from_bits_retain(crate::abi::open_flags::NONBLOCK);
                file.update_flags(flag, if on { flag } else { libos::fs::vfs::OpenFlags::empty() });
            }
        }
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        match self {
            Object::Console | Object::Epoll(_) => false,
            Object::Pipe(end) => end.is_nonblocking(),
            Object::Event(counter) => counter.is_nonblocking(),
            Object::Timer(timer) => timer.is_nonblocking(),
            Object::Socket(socket) => socket.is_nonblocking(),
            #[cfg(feature = "fs")]
            Object::File(file) => file.flags().bits() & crate::abi::open_flags::NONBLOCK != 0,
        }
    }

    /// The socket behind this object (`ENOTSOCK` for anything else).
    pub fn socket(&self) -> Result<&crate::net::Socket> {
        match self {
            Object::Socket(socket) => Ok(socket),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// True for the console (a terminal for `isatty`).
    pub fn is_console(&self) -> bool {
        matches!(self, Object::Console)
    }
}

/// One open descriptor.
#[derive(Clone)]
pub struct Descriptor {
    /// The shared open object.
    pub object: Arc<Object>,
    /// `FD_CLOEXEC`: closed by `execve`.
    pub cloexec: bool,
}

/// The most descriptors a program may have open (`RLIMIT_NOFILE`).
pub const MAX_FDS: usize = 1024;

static TABLE: Mutex<Vec<Option<Descriptor>>> = Mutex::new(Vec::new());

/// Puts the console at 0, 1 and 2 (program start).
pub fn init_console() {
    let console = Arc::new(Object::Console);
    let mut table = TABLE.lock();
    table.clear();
    for _ in 0..3 {
        table.push(Some(Descriptor { object: console.clone(), cloexec: false }));
    }
}

/// The table index of descriptor argument `fd`: Linux reads descriptors as `unsigned int`, so
/// only the low 32 bits count (a program may leave anything above them, as with any `int`
/// argument).
fn index(fd: u64) -> usize {
    fd as u32 as usize
}

/// The object of `fd` (`EBADF` if not open).
pub fn get(fd: u64) -> Result<Arc<Object>> {
    get_descriptor(fd).map(|d| d.object)
}

/// The descriptor `fd` (`EBADF` if not open).
pub fn get_descriptor(fd: u64) -> Result<Descriptor> {
    let table = TABLE.lock();
    table.get(index(fd)).and_then(Option::clone).ok_or(Errno::EBADF)
}

/// The open descriptors' numbers, ascending (`/proc/self/fd`).
pub fn numbers() -> Vec<u32> {
    let table = TABLE.lock();
    table.iter().enumerate().filter(|(_, d)| d.is_some()).map(|(i, _)| i as u32).collect()
}

/// Installs `descriptor` at the lowest free number `>= min`; `EMFILE` when full.
pub fn insert_from(min: usize, descriptor: Descriptor) -> Result<u64> {
    let mut table = TABLE.lock();
    let free = (min..MAX_FDS).find(|&i| table.get(i).is_none_or(Option::is_none)).ok_or(Errno::EMFILE)?;
    if table.len() <= free {
        table.resize(free + 1, None);
    }
    table[free] = Some(descriptor);
    Ok(free as u64)
}

/// Installs `object` at the lowest free number.
pub fn insert(object: Object, cloexec: bool) -> Result<u64> {
    insert_from(0, Descriptor { object: Arc::new(object), cloexec })
}

/// Installs two objects (the ends of a pipe or socket pair) at the lowest free numbers, or
/// neither (`EMFILE`).
pub fn insert_pair(first: Object, second: Object, cloexec: bool) -> Result<(u64, u64)> {
    let a = insert(first, cloexec)?;
    match insert(second, cloexec) {
        Ok(b) => Ok((a, b)),
        Err(e) => {
            let _ = close(a);
            Err(e)
        }
    }
}

/// Puts `descriptor` at exactly `fd`, closing what was there (`dup2`/`dup3`).
pub fn replace(fd: u64, descriptor: Descriptor) -> Result<u64> {
    let slot = Some(index(fd)).filter(|&i| i < MAX_FDS).ok_or(Errno::EBADF)?;
    let old = {
        let mut table = TABLE.lock();
        if table.len() <= slot {
            table.resize(slot + 1, None);
        }
        table[slot].replace(descriptor)
    };
    drop(old); // outside the lock: the last close of a file may do I/O
    Ok(slot as u64)
}

/// Closes `fd` (`EBADF` if not open).
pub fn close(fd: u64) -> Result<()> {
    let old = {
        let mut table = TABLE.lock();
        table.get_mut(index(fd)).and_then(Option::take)
    };
    old.map(drop).ok_or(Errno::EBADF)
}

/// Calls `f` with the object of every open descriptor (a fork shares the pipes among them).
pub fn for_each_object(mut f: impl FnMut(&Object)) {
    let objects: Vec<Arc<Object>> = TABLE.lock().iter().flatten().map(|d| d.object.clone()).collect();
    for object in &objects {
        f(object);
    }
}

/// Closes every descriptor with `FD_CLOEXEC` (`execve`).
pub fn close_on_exec() {
    let closed: Vec<Descriptor> = {
        let mut table = TABLE.lock();
        table.iter_mut().filter(|slot| slot.as_ref().is_some_and(|d| d.cloexec)).filter_map(Option::take).collect()
    };
    drop(closed); // outside the lock, as in `close`
}

/// Closes every descriptor (program exit, as Linux's `exit_files`): the last close of a file
/// unlinked while open frees it before the file systems' last sync, and sockets and pipe ends
/// close as they would for a process that ends.
pub fn close_all() {
    let closed: Vec<Descriptor> = TABLE.lock().drain(..).flatten().collect();
    drop(closed); // outside the lock, as in `close`
}

/// Sets `FD_CLOEXEC` of `fd`.
pub fn set_cloexec(fd: u64, on: bool) -> Result<()> {
    let mut table = TABLE.lock();
    let slot = table.get_mut(index(fd)).and_then(Option::as_mut).ok_or(Errno::EBADF)?;
    slot.cloexec = on;
    Ok(())
}
