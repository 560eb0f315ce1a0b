//! A classic-BPF interpreter for seccomp programs, the subset libseccomp generates (absolute
//! word loads from `seccomp_data`, ALU with a constant, jumps with a constant, `ret #k`): used
//! to check that [`super::shrink`]'s program decides exactly as libseccomp's does.

use libc::sock_filter;

use super::verify::{JA, JEQ, JGE, JGT, JSET, LD_ABS, RET};

/// `struct seccomp_data` as the filter sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// The syscall number.
    pub nr: u32,
    /// The `AUDIT_ARCH_*` value.
    pub arch: u32,
    /// The instruction pointer.
    pub ip: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 32-bit word at byte `offset` (little-endian layout, as on x86).
    fn word(&self, offset: u32) -> Option<u32> {
        let lo = |v: u64| (v & 0xffff_ffff) as u32;
        let hi = |v: u64| (v >> 32) as u32;
        Some(match offset {
            0 => self.nr,
            4 => self.arch,
            8 => lo(self.ip),
            12 => hi(self.ip),
            16..=63 if offset % 4 == 0 => {
                let a = self.args[((offset - 16) / 8) as usize];
                if (offset - 16) % 8 == 0 {
                    lo(a)
                } else {
                    hi(a)
                }
            }
            _ => return None,
        })
    }
}

/// What `prog` returns for `data`; `None` when it uses an instruction outside the subset, jumps
/// out of itself or runs off its end.
pub fn run(prog: &[sock_filter], data: &SeccompData) -> Option<u32> {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let ins = prog.get(pc)?;
        let (k, next) = (ins.k, pc + 1);
        pc = match ins.code {
            LD_ABS => {
                a = data.word(k)?;
                next
            }
            0x00 => {
                a = k;
                next
            }
            RET => return Some(k),
            JA => next.checked_add(k as usize)?,
            JEQ | JGT | JGE | JSET => {
                let taken = match ins.code {
                    JEQ => a == k,
                    JGT => a > k,
                    JGE => a >= k,
                    _ => a & k != 0,
                };
                next + usize::from(if taken { ins.jt } else { ins.jf })
            }
            0x04 | 0x14 | 0x24 | 0x44 | 0x54 | 0x64 | 0x74 | 0xa4 => {
                a = match ins.code {
                    0x04 => a.wrapping_add(k),
                    0x14 => a.wrapping_sub(k),
                    0x24 => a.wrapping_mul(k),
                    0x44 => a | k,
                    0x54 => a & k,
                    0x64 => a.checked_shl(k).unwrap_or(0),
                    0x74 => a.checked_shr(k).unwrap_or(0),
                    _ => a ^ k,
                };
                next
            }
            _ => return None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    /// `ld nr; jeq 7 ? allow : errno; ...`
    fn prog() -> Vec<sock_filter> {
        vec![
            ins(0x20, 0, 0, 4),
            ins(0x15, 1, 0, 0xc000_003e),
            ins(0x06, 0, 0, 0),
            ins(0x20, 0, 0, 0),
            ins(0x15, 0, 3, 7),
            ins(0x20, 0, 0, 20), // high word of args[0]
            ins(0x54, 0, 0, 0xff),
            ins(0x15, 1, 0, 0x12),
            ins(0x06, 0, 0, 0x0005_0001),
            ins(0x06, 0, 0, 0x7fff_0000),
        ]
    }

    #[test_case(0, 7, 0, Some(0) ; "another arch is killed")]
    #[test_case(0xc000_003e, 8, 0, Some(0x0005_0001) ; "another syscall gets the errno")]
    #[test_case(0xc000_003e, 7, 0x12 << 32, Some(0x7fff_0000) ; "the masked high word matches")]
    #[test_case(0xc000_003e, 7, 0x1012 << 32, Some(0x7fff_0000) ; "bits outside the mask are ignored")]
    #[test_case(0xc000_003e, 7, 0x12, Some(0x0005_0001) ; "the low word is not the high word")]
    fn decides(arch: u32, nr: u32, arg0: u64, want: Option<u32>) {
        let d = SeccompData { nr, arch, args: [arg0, 0, 0, 0, 0, 0], ..SeccompData::default() };
        assert_eq!(run(&prog(), &d), want);
    }

    #[test_case(vec![ins(0x20, 0, 0, 64), ins(0x06, 0, 0, 0)] ; "a load beyond seccomp_data")]
    #[test_case(vec![ins(0x20, 0, 0, 2), ins(0x06, 0, 0, 0)] ; "an unaligned load")]
    #[test_case(vec![ins(0x05, 0, 0, 5), ins(0x06, 0, 0, 0)] ; "a jump out")]
    #[test_case(vec![ins(0x20, 0, 0, 0)] ; "running off the end")]
    #[test_case(vec![ins(0x61, 0, 0, 0), ins(0x06, 0, 0, 0)] ; "an opcode outside the subset")]
    fn refuses(p: Vec<sock_filter>) {
        assert_eq!(run(&p, &SeccompData::default()), None);
    }
}
