//! Descriptor control: `ioctl` (the requests every descriptor takes, the terminal's, a disk's),
//! `fcntl` (descriptor and status flags, duplication) and `dup2`/`dup3`.

use crate::fd::{self, Object};
use crate::user;
use libos::{Errno, Result};

/// `ioctl(fd, request, arg)`.
pub fn ioctl(fd_number: u64, request: u64, arg: u64) -> Result<u64> {
    const TCGETS: u64 = 0x5401;
    const TIOCGWINSZ: u64 = 0x5413;
    const FIONREAD: u64 = 0x541b;
    const FIONBIO: u64 = 0x5421;
    const FIOCLEX: u64 = 0x5451;
    const FIONCLEX: u64 = 0x5450;
    // The request is an `unsigned int` in Linux; musl passes an `int`, so requests with the top
    // bit set (`_IOR` ones such as BLKGETSIZE64) arrive sign-extended.
    let request = request & u64::from(u32::MAX);
    let object = fd::get(fd_number)?;
    match request {
        // For every kind of descriptor, as on Linux.
        FIONBIO => {
            // SAFETY: checked by `user::read`.
            let on: i32 = unsafe { user::read(arg)? };
            object.set_nonblocking(on != 0);
            return Ok(0);
        }
        FIOCLEX | FIONCLEX => return fd::set_cloexec(fd_number, request == FIOCLEX).map(|()| 0),
        FIONREAD => {
            let available = match &*object {
                Object::Socket(socket) => socket.available()?,
                Object::Pipe(end) if !end.is_write_end() => end.available(),
                #[cfg(feature = "fs")]
                Object::File(file) => {
                    let meta = file.metadata()?;
                    if meta.file_type.is_dir() {
                        return Err(Errno::EINVAL);
                    }
                    meta.size.saturating_sub(crate::shared_offset::position(&object, file)?) as usize
                }
                _ => return Err(Errno::ENOTTY),
            };
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, available.min(i32::MAX as usize) as i32)? };
            return Ok(0);
        }
        _ => {}
    }
    #[cfg(feature = "fs")]
    if let Object::File(file) = &*object {
        let meta = file.metadata()?;
        if meta.file_type == libos::fs::FileType::BlockDevice {
            return block_device_ioctl(file, &meta, request, arg);
        }
    }
    if !object.is_console() {
        return Err(Errno::ENOTTY);
    }
    match request {
        TCGETS => {
            // struct termios (kernel layout, 36 bytes): a cooked terminal, 38400 baud.
            let mut termios = [0u8; 36];
            termios[0..4].copy_from_slice(&0x0500u32.to_ne_bytes()); // c_iflag: ICRNL | IXON
            termios[4..8].copy_from_slice(&0x0005u32.to_ne_bytes()); // c_oflag: OPOST | ONLCR
            termios[8..12].copy_from_slice(&0x00bfu32.to_ne_bytes()); // c_cflag: B38400 | CS8 | CREAD
            termios[12..16].copy_from_slice(&0x8a3bu32.to_ne_bytes()); // c_lflag: ISIG ICANON ECHO...
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, termios)? };
            Ok(0)
        }
        TIOCGWINSZ => {
            // SAFETY: as above. 24 rows, 80 columns.
            unsafe { user::write(arg, [24u16, 80, 0, 0])? };
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The `ioctl`s of a disk (`/dev/vda`): its size in bytes and in sectors, its block sizes,
/// whether it is read-only, and a flush.
#[cfg(feature = "fs")]
fn block_device_ioctl(file: &libos::fs::vfs::OpenFile, meta: &libos::fs::Metadata, request: u64, arg: u64) -> Result<u64> {
    const BLKROGET: u64 = 0x125e;
    const BLKGETSIZE: u64 = 0x1260;
    const BLKFLSBUF: u64 = 0x1261;
    const BLKSSZGET: u64 = 0x1268;
    const BLKPBSZGET: u64 = 0x127b;
    const BLKGETSIZE64: u64 = 0x8008_1272;
    let sector_size = i32::try_from(meta.block_size).map_err(|_| Errno::EINVAL)?;
    match request {
        BLKGETSIZE64 => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, meta.size)? }
        }
        BLKGETSIZE => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, meta.size / 512)? }
        }
        BLKSSZGET | BLKPBSZGET => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, sector_size)? }
        }
        BLKROGET => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, i32::from(meta.perm & 0o222 == 0))? }
        }
        BLKFLSBUF => file.sync()?,
        _ => return Err(Errno::ENOTTY),
    }
    Ok(0)
}

/// `fcntl(fd, cmd, arg)`.
pub fn fcntl(fd_number: u64, cmd: u64, arg: u64) -> Result<u64> {
    const F_DUPFD: u64 = 0;
    const F_GETFD: u64 = 1;
    const F_SETFD: u64 = 2;
    const F_GETFL: u64 = 3;
    const F_SETFL: u64 = 4;
    const F_GETLK: u64 = 5;
    const F_SETLK: u64 = 6;
    const F_SETLKW: u64 = 7;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    let descriptor = fd::get_descriptor(fd_number)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = usize::try_from(arg).ok().filter(|&m| m < fd::MAX_FDS).ok_or(Errno::EINVAL)?;
            fd::insert_from(min, fd::Descriptor { cloexec: cmd == F_DUPFD_CLOEXEC, ..descriptor })
        }
        F_GETFD => Ok(u64::from(descriptor.cloexec)),
        F_SETFD => fd::set_cloexec(fd_number, arg & 1 != 0).map(|()| 0),
        F_GETFL => Ok(status_flags(&descriptor.object)),
        F_SETFL => set_status_flags(&descriptor.object, arg).map(|()| 0),
        #[cfg(feature = "fs")]
        F_SETLK | F_SETLKW | F_GETLK => crate::locks::record_lock(fd_number, cmd == F_GETLK, arg),
        // An image without files has no file to lock.
        #[cfg(not(feature = "fs"))]
        F_SETLK | F_SETLKW | F_GETLK => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

/// `F_GETFL`: the access mode and the status flags.
fn status_flags(object: &Object) -> u64 {
    use crate::abi::open_flags::NONBLOCK;
    let nonblock = if object.is_nonblocking() { u64::from(NONBLOCK) } else { 0 };
    nonblock
        | match object {
            Object::Console | Object::Event(_) | Object::Timer(_) | Object::Socket(_) => 2, // O_RDWR
            Object::Pipe(end) => u64::from(end.is_write_end()),                            // O_WRONLY / O_RDONLY
            Object::Epoll(_) => 0,
            #[cfg(feature = "fs")]
            Object::File(file) => u64::from(file.flags().bits() & (crate::abi::open_flags::APPEND | crate::abi::open_flags::PATH | 0o3)),
        }
}

/// `F_SETFL`: `O_NONBLOCK` on every descriptor, `O_APPEND` on files; the other bits (access
/// mode, creation flags, `O_ASYNC`, `O_DIRECT`, `O_NOATIME`) are ignored, as Linux ignores the
/// ones it cannot change.
fn set_status_flags(object: &Object, flags: u64) -> Result<()> {
    use crate::abi::open_flags::{APPEND, NONBLOCK};
    object.set_nonblocking(flags & u64::from(NONBLOCK) != 0);
    #[cfg(feature = "fs")]
    if let Object::File(file) = object {
        let append = libos::fs::vfs::OpenFlags::APPEND;
        file.update_flags(append, if flags & u64::from(APPEND) != 0 { append } else { libos::fs::vfs::OpenFlags::empty() });
    }
    #[cfg(not(feature = "fs"))]
    let _ = APPEND;
    Ok(())
}

/// `dup2(old, new)` (`is_dup2`: the same descriptor twice is not an error) and
/// `dup3(old, new, flags)`.
pub fn dup3(old: u64, new: u64, flags: u64, is_dup2: bool) -> Result<u64> {
    const O_CLOEXEC: u64 = 0o2000000;
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let descriptor = fd::get_descriptor(old)?;
    // Descriptors are `unsigned int`s: only the low 32 bits count (see `fd::get`).
    if old as u32 == new as u32 {
        return if is_dup2 { Ok(u64::from(new as u32)) } else { Err(Errno::EINVAL) };
    }
    fd::replace(new, fd::Descriptor { cloexec: flags & O_CLOEXEC != 0, ..descriptor })
}
