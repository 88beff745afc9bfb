//! Packs `rootfs/` into `$OUT_DIR/rootfs.cpio` (newc), which `main.rs` embeds as the image's
//! initial files: boot unpacks it into the root ramfs before `main`.

use libos_vfs::cpio::Builder;
use std::path::Path;

fn add(builder: &mut Builder, root: &Path, dir: &Path) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("reading rootfs/").map(|e| e.expect("rootfs entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.strip_prefix(root).expect("inside rootfs").to_str().expect("UTF-8 name");
        let meta = std::fs::symlink_metadata(&path).expect("stat in rootfs/");
        if meta.is_dir() {
            builder.dir(name, 0o755);
            add(builder, root, &path);
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink in rootfs/");
            builder.symlink(name, target.to_str().expect("UTF-8 target"));
        } else {
            builder.file(name, 0o644, &std::fs::read(&path).expect("reading a rootfs file"));
        }
    }
}

fn main() {
    let root = Path::new("rootfs");
    println!("cargo::rerun-if-changed=rootfs");
    let mut builder = Builder::new();
    add(&mut builder, root, root);
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("rootfs.cpio");
    std::fs::write(out, builder.finish()).expect("writing rootfs.cpio");
}
