//! Packs `www/` into `$OUT_DIR/www.cpio` (newc), which `main.rs` embeds: the site served when
//! the root file system is the image's ramfs.

use libos_vfs::cpio::Builder;
use std::path::Path;

fn add(builder: &mut Builder, root: &Path, dir: &Path) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("reading www/").map(|e| e.expect("www entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.strip_prefix(root).expect("inside www").to_str().expect("UTF-8 name");
        let meta = std::fs::symlink_metadata(&path).expect("stat in www/");
        if meta.is_dir() {
            builder.dir(name, 0o755);
            add(builder, root, &path);
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink in www/");
            builder.symlink(name, target.to_str().expect("UTF-8 target"));
        } else {
            builder.file(name, 0o644, &std::fs::read(&path).expect("reading a www file"));
        }
    }
}

fn main() {
    let root = Path::new("www");
    println!("cargo::rerun-if-changed=www");
    let mut builder = Builder::new();
    add(&mut builder, root, root);
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("www.cpio");
    std::fs::write(out, builder.finish()).expect("writing www.cpio");
}
