//! Initial-files archives: [`libos_vfs::cpio::unpack`] of any bytes into `/dest` of a ramfs
//! that also holds `/outside/secret`. Whatever the archive holds (names with `..`, symlinks to
//! `/` or `..` and entries written through them), unpacking must give `Ok` or an error, never
//! a panic, and must leave everything outside `/dest` as it was.

use libos_fs_ramfs::RamFs;
use libos_vfs::cpio;
use libos_vfs::{OpenFlags, Vfs};
use std::sync::Arc;

/// Unpacks `data` and checks that nothing outside the destination changed.
pub fn run(data: &[u8]) {
    let vfs = Vfs::new(Arc::new(RamFs::new()));
    vfs.mkdir("/dest", 0o755).expect("mkdir /dest");
    vfs.mkdir("/outside", 0o755).expect("mkdir /outside");
    let secret = vfs.open("/outside/secret", OpenFlags::CREAT | OpenFlags::WRONLY, 0o600).expect("create secret");
    secret.write(b"secret").expect("write secret");
    drop(secret);
    let before = outside(&vfs);
    let _ = cpio::unpack(&vfs, data, "/dest");
    assert_eq!(outside(&vfs), before, "unpacking wrote outside the destination");
}

/// Everything outside `/dest`: names, types, sizes and permissions of `/` and `/outside` (of
/// `/dest` only its name), and the secret's bytes.
fn outside(vfs: &Vfs) -> Vec<String> {
    let mut seen = Vec::new();
    for dir in ["/", "/outside"] {
        let mut entries = vfs.read_dir(dir).expect("read_dir");
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let path = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
            if path == "/dest" {
                // Its contents (and so its size) are the unpack's business.
                seen.push(path);
                continue;
            }
            let meta = vfs.symlink_metadata(&path).expect("lstat");
            seen.push(format!("{path} {:?} {} {:o}", meta.file_type, meta.size, meta.perm));
        }
    }
    let file = vfs.open("/outside/secret", OpenFlags::RDONLY, 0).expect("open secret");
    let mut buf = [0u8; 64];
    let n = file.read(&mut buf).expect("read secret");
    seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    seen
}
