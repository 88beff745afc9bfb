//! Cases for listing directories: every entry once, stable cookies, `.` and `..`.

use super::*;

/// `readdir` lists every entry once with its type, without `.` and `..`; large directories.
pub(super) fn readdir(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.mkdir("/d/sub", 0o755));
    ok!(write_file(&vfs, "/d/file", b""));
    ok!(vfs.symlink("file", "/d/link"));
    let mut entries = ok!(vfs.read_dir("/d"));
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(&str, FileType)> = entries.iter().map(|e| (e.name.as_str(), e.file_type)).collect();
    eq!(summary, vec![("file", FileType::Regular), ("link", FileType::Symlink), ("sub", FileType::Directory)]);
    eq!(entries[2].ino, ok!(vfs.metadata("/d/sub")).ino);
    err!(vfs.read_dir("/d/file"), ENOTDIR);
    err!(vfs.read_dir("/missing"), ENOENT);
    ok!(vfs.mkdir("/big", 0o755));
    for i in 0..500 {
        ok!(vfs.open(&format!("/big/entry-{i}"), NEW, 0o644));
    }
    let mut listed = ok!(names(&vfs, "/big"));
    listed.dedup();
    eq!(listed.len(), 500);
    for i in (0..500).step_by(2) {
        ok!(vfs.unlink(&format!("/big/entry-{i}")));
    }
    eq!(ok!(names(&vfs, "/big")).len(), 250);
    ok!(vfs.metadata("/big/entry-499"));
    err!(vfs.metadata("/big/entry-498"), ENOENT);
    Ok(())
}

/// Cookies stay valid while the directory changes: entries present throughout are listed
/// exactly once, removed ones are not listed, and rewinding starts over.
pub(super) fn readdir_stable_cookies(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    for i in 0..20 {
        ok!(vfs.open(&format!("/e{i}"), NEW, 0o644));
    }
    let dir = ok!(vfs.open("/", OpenFlags::DIRECTORY, 0));
    let mut seen = Vec::new();
    for _ in 0..5 {
        let entry = ok!(dir.read_dir_next());
        let Some(entry) = entry else { return Err("directory ended early".to_string()) };
        seen.push(entry.name);
    }
    let resume = dir.position();
    // Remove an entry not yet seen, add new ones.
    let unseen: Vec<String> = (0..20).map(|i| format!("e{i}")).filter(|n| !seen.contains(n)).collect();
    let removed = unseen[0].clone();
    ok!(vfs.unlink(&format!("/{removed}")));
    for i in 0..5 {
        ok!(vfs.open(&format!("/new{i}"), NEW, 0o644));
    }
    while let Some(entry) = ok!(dir.read_dir_next()) {
        seen.push(entry.name);
    }
    check!(!seen.contains(&removed), "removed entry {removed} was listed");
    for name in &unseen[1..] {
        eq!(seen.iter().filter(|n| *n == name).count(), 1);
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    eq!(dedup.len(), seen.len());
    // Continue from a saved cookie: same as continuing.
    ok!(dir.seek(SeekFrom::Start(resume)));
    let mut again = 0;
    while ok!(dir.read_dir_next()).is_some() {
        again += 1;
    }
    eq!(again, seen.len() - 5);
    ok!(dir.seek(SeekFrom::Start(0)));
    let mut all = 0;
    while ok!(dir.read_dir_next()).is_some() {
        all += 1;
    }
    eq!(all, 24 + 2); // with `.` and `..`
    Ok(())
}

/// `readdir` on an open directory lists `.` (the directory) and `..` (its parent; the root's
/// is itself) first, then the entries, none of them `.` or `..` again; a saved cookie after
/// `..` continues with the entries; `read_dir` (std-like) leaves both out.
pub(super) fn readdir_dot_entries(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.open("/d/a", NEW, 0o644));
    ok!(vfs.mkdir("/d/b", 0o755));
    let root_ino = ok!(vfs.metadata("/")).ino;
    for (path, ino, parent_ino) in [("/d", ok!(vfs.metadata("/d")).ino, root_ino), ("/", root_ino, root_ino)] {
        let dir = ok!(vfs.open(path, OpenFlags::DIRECTORY, 0));
        let dot = ok!(dir.read_dir_next()).ok_or("no `.`")?;
        eq!((dot.name.as_str(), dot.ino, dot.file_type), (".", ino, FileType::Directory));
        let dotdot = ok!(dir.read_dir_next()).ok_or("no `..`")?;
        eq!((dotdot.name.as_str(), dotdot.ino, dotdot.file_type), ("..", parent_ino, FileType::Directory));
        let mut rest = Vec::new();
        while let Some(entry) = ok!(dir.read_dir_next()) {
            rest.push(entry.name);
        }
        check!(!rest.iter().any(|n| n == "." || n == ".."));
        eq!(rest.len(), if path == "/" { 1 } else { 2 });
        ok!(dir.seek(SeekFrom::Start(dotdot.next_cookie)));
        eq!(ok!(dir.read_dir_next()).map(|e| e.name), rest.first().cloned());
        ok!(dir.seek(SeekFrom::Start(dot.next_cookie)));
        eq!(ok!(dir.read_dir_next()).map(|e| e.name), Some("..".to_string()));
    }
    eq!(ok!(names(&vfs, "/d")), vec!["a".to_string(), "b".to_string()]);
    // A mount root's `..` is the directory holding the mount point (another file system).
    ok!(vfs.mount("/d/b", f.create()?));
    let mounted = ok!(vfs.open("/d/b", OpenFlags::DIRECTORY, 0));
    eq!(ok!(mounted.read_dir_next()).map(|e| e.ino), Some(ok!(vfs.metadata("/d/b")).ino));
    eq!(ok!(mounted.read_dir_next()).map(|e| e.ino), Some(ok!(vfs.metadata("/d")).ino));
    Ok(())
}
