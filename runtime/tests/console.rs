//! `terminal: true`: the pty master reaches the `--console-socket` (as runc sends it), and a
//! foreground `run` without a console socket proxies the pty itself.

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{text, Fixture};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

#[test]
fn pty_master_is_sent_to_the_console_socket() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "tty; echo console-ok; sleep 30"], |s| s["process"]["terminal"] = json!(true));
    let sock_path = f.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd arrives over the console socket");
        // SAFETY: the fd was just received over SCM_RIGHTS and is owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let id = f.id("tty");
    let bundle = f.bundle();
    let out = f.isorun(&[
        "run",
        "-d",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let master = std::fs::File::from(receiver.join().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut master = master;
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("console-ok") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(Duration::from_secs(10)).expect("output on the pty within 10 s");
    assert!(seen.contains("/dev/pts/"), "the process's stdio is a pty: {seen:?}");
    assert!(seen.contains("console-ok"), "{seen:?}");
}

#[test]
fn foreground_run_proxies_the_terminal() {
    let mut f = Fixture::new();
    let (code, out, err) = f
        .run(&["sh", "-c", "test -t 1 && echo is-a-tty; exit 3"], |s| s["process"]["terminal"] = json!(true));
    assert_eq!(code, 3, "stderr: {err}");
    assert!(out.contains("is-a-tty"), "{out:?}");
}

#[test]
fn detached_terminal_without_console_socket_is_an_error() {
    let mut f = Fixture::new();
    f.config(&["true"], |s| s["process"]["terminal"] = json!(true));
    let id = f.id("notty");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("console-socket"), "{}", text(&out.stderr));
    assert!(!f.root().join(&id).exists());
}
