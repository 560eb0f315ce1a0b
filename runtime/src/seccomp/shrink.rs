//! Shorter programs for the kernel to load: libseccomp tests syscall numbers one `jeq` at a
//! time (docker's default profile: 960 instructions), and seccomp(2) converts and JITs every
//! instruction on every container start (`seccomp()` of docker's 960: 0.72–0.84 ms here on a
//! quiet machine; of the 279 this module makes of them: 0.17 ms). A run of `jeq`s that all
//! jump to the same place is a set-membership test; [`shrink`] rewrites it as one test per
//! range of consecutive numbers (docker's 290 x86_64 syscalls are 30 ranges), and keeps every
//! other instruction as it is.
//!
//! No crate does this for libseccomp's output (seccompiler generates its own programs, with
//! other semantics), so it is written here, small and pure: [`shrink`] returns the original
//! program unless the result is shorter and fits classic BPF's 8-bit jump offsets, and
//! [`super::compile`] keeps it only when [`decide_alike`] finds no input on which the two
//! programs decide differently.

use std::collections::BTreeSet;

use libc::sock_filter;

use super::interp::{self, SeccompData};
use super::verify::{JA, JEQ, JGE, JGT, JSET, LD_ABS};

/// Where a jump of the new program goes.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The instruction that took the place of the original's instruction at this index.
    Old(usize),
    /// The instruction at this index of the new program.
    New(usize),
}

/// An instruction of the new program, its jumps not yet encoded.
#[derive(Debug, Clone, Copy)]
struct Item {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn is_cond_jump(code: u16) -> bool {
    matches!(code, JEQ | JGT | JGE | JSET)
}

/// The instructions of `prog` that a jump lands on (falling through to the next one is not
/// counted: inside a run that is the run itself).
fn targets(prog: &[sock_filter]) -> BTreeSet<usize> {
    let mut t = BTreeSet::new();
    for (i, ins) in prog.iter().enumerate() {
        let offsets = match ins.code {
            JA => vec![ins.k as usize],
            c if is_cond_jump(c) => vec![usize::from(ins.jt), usize::from(ins.jf)],
            _ => vec![],
        };
        t.extend(offsets.into_iter().filter(|&o| o > 0).map(|o| i + 1 + o));
    }
    t
}

/// The end (exclusive) of the run of `jeq k, T, next` instructions starting at `start`: all
/// fall through when false, all jump to the same T, none is jumped to but the first.
fn run_end(prog: &[sock_filter], start: usize, jumped_to: &BTreeSet<usize>) -> usize {
    let is_member = |i: usize| prog[i].code == JEQ && prog[i].jf == 0;
    if !is_member(start) {
        return start;
    }
    let t = start + 1 + usize::from(prog[start].jt);
    let mut end = start + 1;
    while end < prog.len()
        && is_member(end)
        && end + 1 + usize::from(prog[end].jt) == t
        && !jumped_to.contains(&end)
    {
        end += 1;
    }
    end
}

/// Consecutive numbers as inclusive ranges, ascending.
fn ranges(ks: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let set: BTreeSet<u32> = ks.collect();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for k in set {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(k) => *hi = k,
            _ => out.push((k, k)),
        }
    }
    out
}

/// "A in ranges ? T : F", ranges ascending, starting at new index `at`: for each range,
/// `jgt hi` (above it: the next range) then `jge lo ? T : F` (below it: below every later one
/// too); a single number is one `jeq`.
fn membership(rs: &[(u32, u32)], at: usize, t: To, f: To) -> Vec<Item> {
    let mut out = Vec::new();
    for (n, &(lo, hi)) in rs.iter().enumerate() {
        let last = n + 1 == rs.len();
        let here = at + out.len();
        if lo == hi {
            let next = if last { f } else { To::New(here + 1) };
            out.push(Item { code: JEQ, k: lo, jt: t, jf: next });
        } else {
            let next = if last { f } else { To::New(here + 2) };
            out.push(Item { code: JGT, k: hi, jt: next, jf: To::New(here + 1) });
            out.push(Item { code: JGE, k: lo, jt: t, jf: f });
        }
    }
    out
}

/// A program that decides as `prog` does, with every run of same-target `jeq`s turned into
/// range tests; `prog` itself when that is not shorter or a jump would not fit.
pub fn shrink(prog: &[sock_filter]) -> Vec<sock_filter> {
    let jumped_to = targets(prog);
    let mut items: Vec<Item> = Vec::with_capacity(prog.len());
    let mut new_index = vec![0usize; prog.len() + 1];
    let mut i = 0;
    while i < prog.len() {
        let end = run_end(prog, i, &jumped_to);
        let rs = ranges(prog[i..end].iter().map(|x| x.k));
        let cost: usize = rs.iter().map(|(lo, hi)| if lo == hi { 1 } else { 2 }).sum();
        if end > i + 1 && cost < end - i {
            let t = To::Old(i + 1 + usize::from(prog[i].jt));
            new_index[i] = items.len();
            let code = membership(&rs, items.len(), t, To::Old(end));
            items.extend(code);
            i = end;
            continue;
        }
        let ins = prog[i];
        new_index[i] = items.len();
        let (jt, jf) = if ins.code == JA {
            (To::Old(i + 1 + ins.k as usize), To::Old(i + 1))
        } else {
            (To::Old(i + 1 + usize::from(ins.jt)), To::Old(i + 1 + usize::from(ins.jf)))
        };
        items.push(Item { code: ins.code, k: ins.k, jt, jf });
        i += 1;
    }
    new_index[prog.len()] = items.len();
    if items.len() >= prog.len() {
        return prog.to_vec();
    }
    encode(&items, &new_index).unwrap_or_else(|| prog.to_vec())
}

/// The instructions with their jumps as offsets; `None` when an offset does not fit.
fn encode(items: &[Item], new_index: &[usize]) -> Option<Vec<sock_filter>> {
    let resolve = |to: To| match to {
        To::Old(i) => new_index.get(i).copied(),
        To::New(i) => Some(i),
    };
    let mut out = Vec::with_capacity(items.len());
    for (at, it) in items.iter().enumerate() {
        let off = |to: To| resolve(to)?.checked_sub(at + 1);
        let ins = if it.code == JA {
            sock_filter { code: JA, jt: 0, jf: 0, k: u32::try_from(off(it.jt)?).ok()? }
        } else if is_cond_jump(it.code) {
            let (jt, jf) = (u8::try_from(off(it.jt)?).ok()?, u8::try_from(off(it.jf)?).ok()?);
            sock_filter { code: it.code, jt, jf, k: it.k }
        } else {
            sock_filter { code: it.code, jt: 0, jf: 0, k: it.k }
        };
        out.push(ins);
    }
    Some(out)
}

/// The inputs [`decide_alike`] tries: every architecture `prog` tests for (a `jeq` right after
/// a load of `arch`) and one it does not; as the syscall number, 0, the largest, and every
/// constant the program compares with and its neighbours (libseccomp's programs compare the
/// number with constants only, so where the decision can change is there); arguments and
/// instruction pointer all zero and all ones.
fn inputs(prog: &[sock_filter]) -> Vec<SeccompData> {
    let mut arches: BTreeSet<u32> = prog
        .windows(2)
        .filter(|w| w[0].code == LD_ABS && w[0].k == 4 && w[1].code == JEQ)
        .map(|w| w[1].k)
        .collect();
    arches.insert(0);
    let mut nrs: BTreeSet<u32> = [0, u32::MAX].into();
    for ins in prog.iter().filter(|i| is_cond_jump(i.code)) {
        nrs.extend([ins.k.wrapping_sub(1), ins.k, ins.k.wrapping_add(1)]);
    }
    let mut out = Vec::with_capacity(arches.len() * nrs.len() * 2);
    for &arch in &arches {
        for &nr in &nrs {
            for fill in [0, u64::MAX] {
                out.push(SeccompData { nr, arch, ip: fill, args: [fill; 6] });
            }
        }
    }
    out
}

/// `Ok` when `a` and `b` return the same for every input `inputs` makes from both; else the
/// first input where they differ (or where either cannot be interpreted).
pub fn decide_alike(a: &[sock_filter], b: &[sock_filter]) -> Result<(), SeccompData> {
    let both: Vec<sock_filter> = a.iter().chain(b).copied().collect();
    for d in inputs(&both) {
        match (interp::run(a, &d), interp::run(b, &d)) {
            (Some(x), Some(y)) if x == y => {}
            _ => return Err(d),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "shrink_tests.rs"]
mod tests;
