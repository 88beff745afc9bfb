//! FUSE reply handling: file operations on a virtio-fs mount ([`VirtioFs`]) whose replies come
//! from the fake FUSE server ([`FakeServer`]) and are then damaged as the input says: a byte
//! overwritten, a wrong reply length, a raw error value, or no reply at all. Every damaged reply
//! must become an error for the caller (`EIO` and friends), never a panic or an overflow; and
//! when no reply was damaged the server must have seen no protocol violation.
//!
//! The first half of the input drives the operations, the second half the damage (so that
//! libFuzzer's mutations of one rarely shift the other).

use crate::input::Input;
use libos_core::Result;
use libos_fs_virtiofs::testing::{FakeServer, ManualClock};
use libos_fs_virtiofs::{FuseChannel, MountOptions, VirtioFs};
use libos_vfs::{OpenFlags, TimeUpdate, Vfs};
use std::sync::{Arc, Mutex};

/// The fake server behind a channel that damages replies.
struct Damaging {
    server: Arc<FakeServer>,
    /// The damage script and the read position in it.
    script: Mutex<(Vec<u8>, usize)>,
    /// True once any reply was damaged.
    damaged: Mutex<bool>,
}

impl Damaging {
    fn next(&self) -> u8 {
        let mut script = self.script.lock().expect("script lock");
        let (bytes, at) = &mut *script;
        let byte = bytes.get(*at).copied().unwrap_or(0);
        *at += 1;
        byte
    }

    fn next_u32(&self) -> u32 {
        u32::from_le_bytes([self.next(), self.next(), self.next(), self.next()])
    }
}

impl FuseChannel for Damaging {
    fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        let action = self.next();
        // Most replies pass untouched (a script of zeros damages nothing).
        if action < 0xc0 {
            return self.server.request(request, reply);
        }
        *self.damaged.lock().expect("damaged lock") = true;
        match action & 3 {
            0 => {
                let n = self.server.request(request, reply)?;
                // Overwrite one byte of the written reply.
                let at = self.next_u32() as usize % n.max(1);
                let value = self.next();
                let mut offset = 0;
                for part in reply.iter_mut() {
                    if at < offset + part.len() {
                        part[at - offset] = value;
                        break;
                    }
                    offset += part.len();
                }
                Ok(n)
            }
            1 => {
                // Claim another length (possibly more than the buffers hold).
                self.server.request(request, reply)?;
                Ok(self.next_u32() as usize % 0x2_0000)
            }
            2 => {
                // Replace the error field (bytes 4..8 of the out header) with a raw value.
                let n = self.server.request(request, reply)?;
                let error = self.next_u32().to_le_bytes();
                if let Some(header) = reply.first_mut().and_then(|part| part.get_mut(4..8)) {
                    header.copy_from_slice(&error);
                }
                Ok(n)
            }
            _ => Err(libos_core::Errno::EIO),
        }
    }

    fn send_forget(&self, request: &[u8]) -> Result<()> {
        self.server.send_forget(request)
    }

    fn max_transfer(&self) -> usize {
        self.server.max_transfer()
    }
}

const PATHS: [&str; 6] = ["/a", "/b", "/d", "/d/c", "/d/e/f", "/a/x"];

/// Mounts, runs the operations, unmounts.
pub fn run(data: &[u8]) {
    let (ops, damage) = data.split_at(data.len() / 2);
    let server = FakeServer::new();
    let channel = Arc::new(Damaging {
        server: server.clone(),
        script: Mutex::new((damage.to_vec(), 0)),
        damaged: Mutex::new(false),
    });
    let clock = ManualClock::new(1);
    let options = MountOptions { clock: clock.clone(), dentry_capacity: 8, forget_batch: 4, ..MountOptions::default() };
    let Ok(fs) = VirtioFs::mount(channel.clone(), options) else { return };
    let vfs = Vfs::new(fs);
    let mut input = Input::new(ops);
    for _ in 0..64 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let path = PATHS[usize::from(input.u8()) % PATHS.len()];
        let other = PATHS[usize::from(input.u8()) % PATHS.len()];
        let size = usize::from(input.u16()) % 9000;
        let _ = match op % 16 {
            0 => vfs.open(path, OpenFlags::CREAT | OpenFlags::RDWR, 0o644).and_then(|f| f.write_at(input.u16().into(), &vec![0x5a; size])).map(drop),
            1 => vfs.open(path, OpenFlags::RDONLY, 0).and_then(|f| f.read_at(input.u16().into(), &mut vec![0; size])).map(drop),
            2 => vfs.mkdir(path, 0o755),
            3 => vfs.read_dir(path).map(drop),
            4 => vfs.metadata(path).map(drop),
            5 => vfs.symlink_metadata(path).map(drop),
            6 => vfs.unlink(path),
            7 => vfs.rmdir(path),
            8 => vfs.rename(path, other),
            9 => vfs.symlink(other, path),
            10 => vfs.read_link(path).map(drop),
            11 => vfs.truncate(path, input.u16().into()),
            12 => vfs.link(path, other),
            13 => vfs.set_times(path, TimeUpdate::Now, TimeUpdate::Keep, input.u8() & 1 == 0),
            14 => vfs.statfs(path).map(drop),
            _ => {
                clock.advance(u64::from(input.u32()));
                vfs.sync()
            }
        };
    }
    drop(vfs);
    if !*channel.damaged.lock().expect("damaged lock") {
        assert_eq!(server.violations(), Vec::<String>::new(), "the client broke the protocol");
    }
}
