//! A structural check of a seccomp classic-BPF program: what the kernel's `seccomp_check_filter`
//! would refuse, found before the filter is installed (and usable by tests and fuzzing).

use libc::sock_filter;

use super::SeccompError;

/// The kernel's limit on the length of a filter (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

pub(super) const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(super) const JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub(super) const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(super) const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub(super) const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub(super) const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub(super) const RET: u16 = 0x06; // BPF_RET | BPF_K

/// `sizeof(struct seccomp_data)`.
const DATA_LEN: u32 = 64;

/// Checks that `prog` has 1..=[`BPF_MAXINSNS`] instructions, only the opcodes seccomp allows
/// for generated filters (absolute word loads inside `seccomp_data`, ALU, conditional and
/// unconditional forward jumps, `ret #k`), jumps that stay inside the program, and a final
/// `ret`.
pub fn verify_program(prog: &[sock_filter]) -> Result<(), SeccompError> {
    let bad = |at: usize, reason: String| Err(SeccompError::Program { at, reason });
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return bad(0, format!("{} instructions, must be 1..={BPF_MAXINSNS}", prog.len()));
    }
    let n = prog.len();
    for (i, ins) in prog.iter().enumerate() {
        let target = |off: usize| i + 1 + off;
        match ins.code {
            LD_ABS if ins.k % 4 != 0 || ins.k >= DATA_LEN => {
                return bad(i, format!("load of seccomp_data offset {}", ins.k))
            }
            LD_ABS | RET => {}
            c if c & 0x07 == 0x04 => {} // BPF_ALU with K or X operand; seccomp allows all but DIV/MOD by X.
            JA if target(ins.k as usize) >= n => return bad(i, format!("ja +{} leaves the program", ins.k)),
            JA => {}
            JEQ | JGT | JGE | JSET => {
                let far = usize::from(ins.jt.max(ins.jf));
                if target(far) >= n {
                    return bad(i, format!("jump +{far} leaves the program of {n}"));
                }
            }
            c => return bad(i, format!("opcode {c:#06x} not allowed in seccomp")),
        }
    }
    if prog[n - 1].code != RET {
        return bad(n - 1, "the last instruction is not a ret".into());
    }
    Ok(())
}
