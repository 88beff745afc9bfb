//! Extended attributes across the host's e2fsprogs and this driver: what the guest sets,
//! `debugfs` reads with the same bytes (and e2fsck finds the blocks sound); what `debugfs`
//! put in an inode's tail, the driver reads, and its first change moves the set into a block.

use super::*;
use libos_vfs::{FileSystem, XattrSet};

/// `debugfs ea_get` of `name` on `path` in `image`: the value's bytes.
fn host_value(image: &[u8], path: &str, name: &str) -> Vec<u8> {
    let out = Temp::new("ea-get");
    debugfs(image, &format!("ea_get -f {} {path} {name}", out.path()));
    std::fs::read(&out.0).unwrap_or_else(|e| panic!("debugfs wrote no value of {name}: {e}"))
}

#[test]
fn attributes_set_in_the_guest_read_the_same_on_the_host() {
    for block_size in [1024, 4096] {
        let (disk, fs, vfs) = volume("8M", block_size, &[]);
        write_file(&vfs, "/f", b"data");
        vfs.mkdir("/d", 0o755).unwrap();
        let big = pattern(700, 3);
        vfs.set_xattr("/f", true, "user.colour", b"blue", XattrSet::Create).unwrap();
        vfs.set_xattr("/f", true, "user.big", &big, XattrSet::Create).unwrap();
        vfs.set_xattr("/f", true, "security.label", b"system_u:object_r:etc_t", XattrSet::Create).unwrap();
        vfs.set_xattr("/d", true, "user.empty", b"", XattrSet::Create).unwrap();
        write_file(&vfs, "/gone", b"x");
        vfs.set_xattr("/gone", true, "user.x", b"1", XattrSet::Create).unwrap();
        vfs.unlink("/gone").unwrap();
        fs.sync().unwrap();
        let image = disk.image();
        assert_clean(&image, "setting attributes");
        assert_eq!(host_value(&image, "/f", "user.colour"), b"blue");
        assert_eq!(host_value(&image, "/f", "user.big"), big);
        assert_eq!(host_value(&image, "/f", "security.label"), b"system_u:object_r:etc_t");
        let listing = String::from_utf8_lossy(&debugfs(&image, "ea_list /d")).into_owned();
        assert!(listing.contains("user.empty (0)"), "{listing}");
        // Removing them all frees the block again.
        for name in ["user.colour", "user.big", "security.label"] {
            vfs.remove_xattr("/f", true, name).unwrap();
        }
        fs.sync().unwrap();
        let image = disk.image();
        assert_clean(&image, "removing attributes");
        let stat = String::from_utf8_lossy(&debugfs(&image, "stat /f")).into_owned();
        assert!(stat.contains("File ACL: 0"), "{stat}");
    }
}

#[test]
fn attributes_the_host_put_in_an_inode_are_read_and_kept() {
    let image = mkfs("4M", 1024, &[]);
    let image = debugfs_write(&image, "write /etc/hostname f");
    let image = debugfs_write(&image, "ea_set /f user.host hostvalue");
    assert!(String::from_utf8_lossy(&debugfs(&image, "stat /f")).contains("File ACL: 0"), "debugfs kept it in the inode");
    let disk = Arc::new(MemDisk::from_image(image));
    let fs = mount(&disk);
    let vfs = Vfs::new(fs.clone());
    assert_eq!(vfs.get_xattr("/f", true, "user.host").unwrap(), b"hostvalue");
    assert_eq!(vfs.list_xattr("/f", true).unwrap(), ["user.host"]);
    vfs.set_xattr("/f", true, "user.guest", b"guestvalue", XattrSet::Create).unwrap();
    let mut names = vfs.list_xattr("/f", true).unwrap();
    names.sort();
    assert_eq!(names, ["user.guest", "user.host"]);
    fs.sync().unwrap();
    let image = disk.image();
    assert_clean(&image, "moving attributes into a block");
    assert_eq!(host_value(&image, "/f", "user.host"), b"hostvalue");
    assert_eq!(host_value(&image, "/f", "user.guest"), b"guestvalue");
}
