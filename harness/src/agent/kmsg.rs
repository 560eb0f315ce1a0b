//! The kernel log read from `/dev/kmsg` while assertions run, for the reports the console does
//! not show at `loglevel=3` (WARNINGs, hung tasks): see [`crate::kernel_log::KmsgFilter`].

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use crate::kernel_log::KmsgFilter;

/// `/dev/kmsg` opened at its end, non-blocking.
pub struct Kmsg {
    file: File,
    filter: KmsgFilter,
}

/// The text of one `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;TEXT`, then ` KEY=VALUE` lines).
pub fn record_text(record: &str) -> &str {
    record.lines().next().and_then(|l| l.split_once(';')).map_or("", |(_, t)| t)
}

impl Kmsg {
    /// Open it and skip what is already there; None when it cannot be read.
    pub fn open() -> Option<Kmsg> {
        let mut file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        Some(Kmsg { file, filter: KmsgFilter::default() })
    }

    /// The new lines worth forwarding since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let text = record_text(&rec);
                    if self.filter.keep(text) {
                        out.push(text.to_owned());
                    }
                }
                // EPIPE: records were overwritten before we read them; go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::record_text;

    #[test]
    fn record_texts() {
        assert_eq!(
            record_text("4,1234,5678,-;WARNING: CPU: 0 PID: 1 at x\n SUBSYSTEM=x\n"),
            "WARNING: CPU: 0 PID: 1 at x"
        );
        assert_eq!(record_text("garbage"), "");
    }
}
