//! Classic-BPF code generation for seccomp, and a structural checker of the result.
//!
//! Layout of a program (every jump goes forward, every path ends in `ret`):
//!
//! ```text
//! ld  [arch]
//! jeq #AUDIT_ARCH_X86_64, 0, 1 ; ja x86_64_family     (one pair per audit value in the filter)
//! jeq #AUDIT_ARCH_I386,   0, 1 ; ja i386
//! ret BAD_ARCH
//! x86_64_family: ld [nr] ; jge #X32_BIT, 0, 2 ; jeq #-1, 1, 0 ; ja x32 (or ret BAD_ARCH) ;
//!                <x86_64 checks> ; <x32 checks>
//! i386:          ld [nr] ; <i386 checks>
//! checks:  groups of up to 255 `jeq #nr` sharing one `ret ACTION` (unconditional rules),
//!          then one block per syscall with argument conditions, then `ret DEFAULT`.
//! ```

use std::collections::BTreeMap;

use libc::sock_filter;
use oci_spec::runtime::LinuxSeccompOperator as Op;

use super::SeccompError;

/// The kernel's limit on the length of a filter (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data` (little-endian).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
/// `sizeof(struct seccomp_data)`.
const DATA_LEN: u32 = 64;

/// Bit 30 of the syscall number marks the x32 ABI on `AUDIT_ARCH_X86_64`.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// `ret #action`.
pub(super) fn ret(action: u32) -> sock_filter {
    stmt(RET, action)
}

/// One argument comparison: `args[index] <op> a` (`(args[index] & a) == b` for MASKED_EQ).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cmp {
    pub index: u8,
    pub op: Op,
    pub a: u64,
    pub b: u64,
}

/// The rules of one syscall on one ABI: conditional rules first (in profile order, the first
/// match wins), then the unconditional action (or the default action).
#[derive(Debug, Default)]
pub(super) struct Calls {
    pub conditional: Vec<(Vec<Cmp>, u32)>,
    pub unconditional: Option<u32>,
}

/// Syscall number → rules, for one ABI.
pub(super) type AbiRules = BTreeMap<u32, Calls>;

/// A jump target while a rule block is being built: to the next rule, or relative.
#[derive(Clone, Copy)]
enum T {
    Fail,
    Rel(u8),
}

struct Ins(u16, u32, T, T);

/// The code of one comparison. `wide`: the ABI has 64-bit arguments (else only the low word
/// is compared, with the value truncated, like libseccomp on 32-bit ABIs).
fn cmp_code(c: &Cmp, wide: bool, out: &mut Vec<Ins>) {
    let lo_off = OFF_ARGS + 8 * u32::from(c.index);
    let (hi, lo) = ((c.a >> 32) as u32, c.a as u32);
    let ld = |off| Ins(LD_ABS, off, T::Rel(0), T::Rel(0));
    use T::{Fail, Rel};
    let pass = |n| Rel(n);
    match c.op {
        Op::ScmpCmpEq => {
            if wide {
                out.extend([ld(lo_off + 4), Ins(JEQ, hi, Rel(0), Fail)]);
            }
            out.extend([ld(lo_off), Ins(JEQ, lo, Rel(0), Fail)]);
        }
        Op::ScmpCmpNe => {
            if wide {
                out.extend([ld(lo_off + 4), Ins(JEQ, hi, Rel(0), pass(2))]);
            }
            out.extend([ld(lo_off), Ins(JEQ, lo, Fail, Rel(0))]);
        }
        Op::ScmpCmpMaskedEq => {
            let (dhi, dlo) = ((c.b >> 32) as u32, c.b as u32);
            if wide {
                out.extend([ld(lo_off + 4), Ins(AND_K, hi, Rel(0), Rel(0)), Ins(JEQ, dhi, Rel(0), Fail)]);
            }
            out.extend([ld(lo_off), Ins(AND_K, lo, Rel(0), Rel(0)), Ins(JEQ, dlo, Rel(0), Fail)]);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            if wide {
                out.extend([ld(lo_off + 4), Ins(JGT, hi, pass(3), Rel(0)), Ins(JEQ, hi, Rel(0), Fail)]);
            }
            let code = if c.op == Op::ScmpCmpGt { JGT } else { JGE };
            out.extend([ld(lo_off), Ins(code, lo, Rel(0), Fail)]);
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            if wide {
                out.extend([ld(lo_off + 4), Ins(JGE, hi, Rel(0), pass(3)), Ins(JEQ, hi, Rel(0), Fail)]);
            }
            let code = if c.op == Op::ScmpCmpLt { JGE } else { JGT };
            out.extend([ld(lo_off), Ins(code, lo, Fail, Rel(0))]);
        }
    }
}

/// A rule block: its comparisons then `ret action`; a failed comparison jumps past the block.
fn rule_block(cmps: &[Cmp], action: u32, wide: bool, out: &mut Vec<sock_filter>) {
    let mut ins = Vec::with_capacity(cmps.len() * 5 + 1);
    for c in cmps {
        cmp_code(c, wide, &mut ins);
    }
    let len = ins.len() + 1; // + ret
    let resolve = |t: T, i: usize| match t {
        // At most 6 comparisons of at most 6 instructions: always < 256.
        T::Fail => u8::try_from(len - i - 1).unwrap_or(u8::MAX),
        T::Rel(n) => n,
    };
    for (i, Ins(code, k, jt, jf)) in ins.iter().enumerate() {
        out.push(jump(*code, *k, resolve(*jt, i), resolve(*jf, i)));
    }
    out.push(ret(action));
}

/// The checks of one ABI: `ld [nr]` must already be in A. Ends with `ret default`.
pub(super) fn abi_checks(rules: &AbiRules, default: u32, wide: bool, out: &mut Vec<sock_filter>) {
    let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (nr, calls) in rules {
        if calls.conditional.is_empty() {
            if let Some(action) = calls.unconditional {
                groups.entry(action).or_default().push(*nr);
            }
        }
    }
    for (action, nrs) in &groups {
        for chunk in nrs.chunks(255) {
            let k = chunk.len();
            for (i, nr) in chunk.iter().enumerate() {
                let last = i + 1 == k;
                // k <= 255, so k - 1 - i fits a u8.
                out.push(jump(JEQ, *nr, if last { 0 } else { (k - 1 - i) as u8 }, u8::from(last)));
            }
            out.push(ret(*action));
        }
    }
    let mut body = Vec::new();
    for (nr, calls) in rules.iter().filter(|(_, c)| !c.conditional.is_empty()) {
        body.clear();
        for (cmps, action) in &calls.conditional {
            rule_block(cmps, *action, wide, &mut body);
        }
        body.push(ret(calls.unconditional.unwrap_or(default)));
        match u8::try_from(body.len()) {
            Ok(n) => out.push(jump(JEQ, *nr, 0, n)),
            Err(_) => {
                out.push(jump(JEQ, *nr, 1, 0));
                out.push(stmt(JA, body.len() as u32));
            }
        }
        out.extend_from_slice(&body);
    }
    out.push(ret(default));
}

/// The whole program from per-audit-arch sections (`(AUDIT_ARCH_*, code)`), each starting
/// with its own `ld [nr]`.
pub(super) fn program(sections: &[(u32, Vec<sock_filter>)], bad_arch: u32) -> Vec<sock_filter> {
    let head = 1 + 2 * sections.len() + 1;
    let total = head + sections.iter().map(|(_, s)| s.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.push(stmt(LD_ABS, OFF_ARCH));
    let mut start = head;
    for (audit, code) in sections {
        out.push(jump(JEQ, *audit, 0, 1));
        let at = out.len();
        out.push(stmt(JA, (start - at - 1) as u32));
        start += code.len();
    }
    out.push(ret(bad_arch));
    for (_, code) in sections {
        out.extend_from_slice(code);
    }
    out
}

/// `ld [nr]`.
pub(super) fn load_nr() -> sock_filter {
    stmt(LD_ABS, OFF_NR)
}

/// The x86_64 audit-arch section: x86_64 checks for numbers below the x32 bit, x32 checks
/// above it; a missing ABI returns `bad_arch`.
pub(super) fn x86_64_family(
    x86_64: Option<Vec<sock_filter>>,
    x32: Option<Vec<sock_filter>>,
    bad_arch: u32,
) -> Vec<sock_filter> {
    // nr -1 (a tracer skipping the syscall, or syscall(-1)) is not x32: it goes to the native
    // checks and gets the default action, as with libseccomp.
    let mut out = vec![load_nr(), jump(JGE, X32_SYSCALL_BIT, 0, 2), jump(JEQ, u32::MAX, 1, 0)];
    let native = x86_64.unwrap_or_else(|| vec![ret(bad_arch)]);
    match &x32 {
        Some(_) => out.push(stmt(JA, native.len() as u32)),
        None => out.push(ret(bad_arch)),
    }
    out.extend(native);
    out.extend(x32.unwrap_or_default());
    out
}

/// Checks that `prog` is a program the kernel's seccomp loader accepts structurally: 1 to
/// 4096 instructions, only the opcodes seccomp allows (loads of `seccomp_data` words, ALU,
/// jumps, returns), every jump target inside the program, and a final `ret` so no path
/// runs off the end (classic BPF jumps only go forward).
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
