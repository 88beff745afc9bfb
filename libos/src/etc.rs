//! The files a root file system made in memory starts with (ramfs, the default root), so that
//! programs that expect a Unix system's basics find them: `/etc/hosts` (`localhost`),
//! `/etc/services` (the well-known ports `getaddrinfo` and `getservbyname` look up),
//! `/etc/passwd` and `/etc/group` (root, nobody; the disk group of `/dev/vd*`), `/etc/nsswitch.conf` (glibc: files, then DNS),
//! `/tmp` (mode 1777) and `/root` (0700). `/etc/resolv.conf` comes from the network: [`write_resolv_conf`] once
//! the DNS server is known (`ip=...,dns=ADDR`, or DHCP's). A host share as root has its own
//! `/etc`, and the app's initial files may replace any of these (they are unpacked after).

use alloc::string::String;

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\ndisk:x:6:\nnogroup:x:65534:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\nservices: files\n";
/// The services of IANA's registry that servers and clients name most (a subset of what a
/// Linux distribution's `netbase` carries).
const SERVICES: &str = "\
echo\t\t7/tcp
echo\t\t7/udp
discard\t\t9/tcp\t\tsink null
discard\t\t9/udp\t\tsink null
daytime\t\t13/tcp
ftp-data\t20/tcp
ftp\t\t21/tcp
ssh\t\t22/tcp
telnet\t\t23/tcp
smtp\t\t25/tcp\t\tmail
time\t\t37/tcp\t\ttimserver
domain\t\t53/tcp
domain\t\t53/udp
bootps\t\t67/udp
bootpc\t\t68/udp
tftp\t\t69/udp
gopher\t\t70/tcp
finger\t\t79/tcp
http\t\t80/tcp\t\twww
kerberos\t88/tcp\t\tkerberos5 krb5
kerberos\t88/udp\t\tkerberos5 krb5
pop3\t\t110/tcp\t\tpop-3
sunrpc\t\t111/tcp\t\tportmapper
sunrpc\t\t111/udp\t\tportmapper
auth\t\t113/tcp\t\tauthentication tap ident
nntp\t\t119/tcp\t\treadnews untp
ntp\t\t123/udp
imap2\t\t143/tcp\t\timap
snmp\t\t161/udp
snmp-trap\t162/udp\t\tsnmptrap
ldap\t\t389/tcp
ldap\t\t389/udp
https\t\t443/tcp
https\t\t443/udp
submissions\t465/tcp\t\tssmtp smtps urd
syslog\t\t514/udp
submission\t587/tcp
ldaps\t\t636/tcp
imaps\t\t993/tcp
pop3s\t\t995/tcp
socks\t\t1080/tcp
openvpn\t\t1194/tcp
openvpn\t\t1194/udp
ms-sql-s\t1433/tcp
mysql\t\t3306/tcp
postgresql\t5432/tcp\tpostgres
amqp\t\t5672/tcp
x11\t\t6000/tcp\t\tx11-0
redis\t\t6379/tcp
http-alt\t8080/tcp\t\twebcache
memcache\t11211/tcp
memcache\t11211/udp
";

/// Writes the defaults into a fresh in-memory root (boot calls this before the app's initial
/// files are unpacked). Failures are logged: a root without them still boots.
pub fn populate_memory_root() {
    let made = crate::fs::create_dir_all("/etc")
        .and_then(|()| crate::fs::create_dir_all("/tmp"))
        .and_then(|()| crate::fs::create_dir_all("/root"))
        .and_then(|()| crate::fs::write("/etc/hosts", HOSTS))
        .and_then(|()| crate::fs::write("/etc/services", SERVICES))
        .and_then(|()| crate::fs::write("/etc/passwd", PASSWD))
        .and_then(|()| crate::fs::write("/etc/group", GROUP))
        .and_then(|()| crate::fs::write("/etc/nsswitch.conf", NSSWITCH))
        // Linux's modes: a sticky, world-writable /tmp (anyone creates, only owners remove)
        // and a private /root.
        .and_then(|()| crate::fs::vfs()?.set_permissions("/tmp", 0o1777, true))
        .and_then(|()| crate::fs::vfs()?.set_permissions("/root", 0o700, true));
    if let Err(e) = made {
        log::warn!("the root's /etc, /tmp and /root: {e}");
    }
}

/// Writes `/etc/resolv.conf` naming `server`, unless the root has one already (from the app's
/// files or a host share) or has no `/etc`.
pub fn write_resolv_conf(server: core::net::IpAddr) {
    if crate::fs::exists("/etc/resolv.conf") || !crate::fs::exists("/etc") {
        return;
    }
    let text: String = alloc::format!("# written by libos from the network configuration\nnameserver {server}\n");
    match crate::fs::write("/etc/resolv.conf", text) {
        Ok(()) => log::debug!("net: /etc/resolv.conf names {server}"),
        Err(e) => log::warn!("net: cannot write /etc/resolv.conf: {e}"),
    }
}
