//! Named pipes (feature `fs`): opening a FIFO node connects to the pipe of that node, shared
//! by every opener while any end is open, with Linux's open rules — a reader waits for a
//! writer and a writer for a reader (`O_NONBLOCK`: a reader opens at once, a writer without
//! a reader fails with `ENXIO`), `O_RDWR` opens both ends and never waits. Data lives only in
//! the pipe, never in the file system, as on Linux.

use super::*;
use alloc::collections::BTreeMap;
use libos::fs::vfs::OpenFile;

/// `(dev, ino)` of a FIFO node -> its pipe while some end is open.
static FIFOS: Mutex<Option<BTreeMap<(u64, u64), alloc::sync::Weak<Pipe>>>> = Mutex::new(None);

/// The pipe of the FIFO `file` names, made on first open.
fn pipe_of(file: &OpenFile) -> Result<Arc<Pipe>> {
    let meta = file.metadata()?;
    let mut fifos = FIFOS.lock();
    let map = fifos.get_or_insert_with(BTreeMap::new);
    map.retain(|_, pipe| pipe.strong_count() > 0);
    if let Some(pipe) = map.get(&(meta.dev, meta.ino)).and_then(alloc::sync::Weak::upgrade) {
        return Ok(pipe);
    }
    let pipe = Pipe::new();
    map.insert((meta.dev, meta.ino), Arc::downgrade(&pipe));
    Ok(pipe)
}

/// Opens the FIFO `file` (just opened in the VFS with `flags`, Linux's `O_*` bits) as a
/// pipe end; `O_RDWR` gives the read end and keeps a write end inside it. Returns the object.
pub fn open(file: &OpenFile, flags: u64) -> Result<Object> {
    const O_ACCMODE: u64 = 3;
    let nonblocking = flags & O_NONBLOCK != 0;
    let pipe = pipe_of(file)?;
    match flags & O_ACCMODE {
        0 => {
            let end = PipeEnd::new(pipe.clone(), false, nonblocking);
            if !nonblocking {
                pipe.wait_for_end(true)?;
            }
            Ok(Object::Pipe(end))
        }
        1 => {
            if nonblocking && !pipe.has_end(false) {
                return Err(Errno::ENXIO);
            }
            let end = PipeEnd::new(pipe.clone(), true, nonblocking);
            if !nonblocking {
                pipe.wait_for_end(false)?;
            }
            Ok(Object::Pipe(end))
        }
        _ => Ok(Object::Pipe(PipeEnd::both(pipe, nonblocking))),
    }
}

/// Opens `pipe` anew, as `open("/proc/self/fd/N")` does for a descriptor holding a pipe
/// (`flags`: Linux's `O_*` bits): an end of the access asked for, which never waits for the
/// other side (Linux's rule for pipes, unlike FIFOs).
pub fn reopen(pipe: Arc<Pipe>, flags: u64) -> Object {
    const O_ACCMODE: u64 = 3;
    let nonblocking = flags & O_NONBLOCK != 0;
    match flags & O_ACCMODE {
        0 => Object::Pipe(PipeEnd::new(pipe, false, nonblocking)),
        1 => Object::Pipe(PipeEnd::new(pipe, true, nonblocking)),
        _ => Object::Pipe(PipeEnd::both(pipe, nonblocking)),
    }
}
