//! Unit tests: translation, program shape, and the semantics of the generated code run through
//! a small classic-BPF interpreter.

use serde_json::{json, Value};
use test_case::test_case;

use super::*;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

fn profile(v: Value) -> LinuxSeccomp {
    parse(&v).unwrap()
}

fn compile_json(v: Value) -> Filter {
    let f = compile(&profile(v)).unwrap();
    verify_program(f.instructions()).unwrap();
    f
}

/// Runs `prog` on a `seccomp_data` (args little-endian, like x86).
fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u32; 16];
    data[0] = nr;
    data[1] = arch;
    for (i, a) in args.iter().enumerate() {
        data[4 + 2 * i] = *a as u32;
        data[5 + 2 * i] = (*a >> 32) as u32;
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            0x20 => acc = data[ins.k as usize / 4],
            0x54 => acc &= ins.k,
            0x05 => pc += ins.k as usize,
            0x06 => return ins.k,
            c => {
                let taken = match c {
                    0x15 => acc == ins.k,
                    0x25 => acc > ins.k,
                    0x35 => acc >= ins.k,
                    0x45 => acc & ins.k != 0,
                    _ => panic!("opcode {c:#x}"),
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }
}

fn deny_mkdir(action: &str, extra: Value) -> Value {
    let mut rule = json!({"names": ["mkdir"], "action": action});
    rule.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

#[test_case("SCMP_ACT_KILL", json!({}), libc::SECCOMP_RET_KILL_THREAD ; "kill")]
#[test_case("SCMP_ACT_KILL_THREAD", json!({}), libc::SECCOMP_RET_KILL_THREAD ; "kill thread")]
#[test_case("SCMP_ACT_KILL_PROCESS", json!({}), libc::SECCOMP_RET_KILL_PROCESS ; "kill process")]
#[test_case("SCMP_ACT_TRAP", json!({}), libc::SECCOMP_RET_TRAP ; "trap")]
#[test_case("SCMP_ACT_ERRNO", json!({}), libc::SECCOMP_RET_ERRNO | 1 ; "errno default eperm")]
#[test_case("SCMP_ACT_ERRNO", json!({"errnoRet": 38}), libc::SECCOMP_RET_ERRNO | 38 ; "errno 38")]
#[test_case("SCMP_ACT_TRACE", json!({"errnoRet": 7}), libc::SECCOMP_RET_TRACE | 7 ; "trace")]
#[test_case("SCMP_ACT_LOG", json!({}), libc::SECCOMP_RET_LOG ; "log")]
fn each_action(action: &str, extra: Value, expect: u32) {
    let f = compile_json(deny_mkdir(action, extra));
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_mkdir as u32, [0; 6]), expect);
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_getpid as u32, [0; 6]), ALLOW);
}

#[test]
fn default_action_and_errno() {
    let f = compile_json(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_getpid as u32, [0; 6]), ALLOW);
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_mkdir as u32, [0; 6]), libc::SECCOMP_RET_ERRNO | 38);
}

const BIG: u64 = 0x1_0000_0005;

#[test_case("SCMP_CMP_EQ", BIG, None, &[(BIG, true), (5, false), (BIG + 1, false)] ; "eq")]
#[test_case("SCMP_CMP_NE", BIG, None, &[(BIG, false), (5, true), (0x2_0000_0005, true)] ; "ne")]
#[test_case("SCMP_CMP_LT", BIG, None, &[(5, true), (BIG - 1, true), (BIG, false), (0x2_0000_0000, false)] ; "lt")]
#[test_case("SCMP_CMP_LE", BIG, None, &[(BIG, true), (0x1_0000_0000, true), (BIG + 1, false), (0x2_0000_0000, false)] ; "le")]
#[test_case("SCMP_CMP_GT", BIG, None, &[(BIG, false), (BIG + 1, true), (0x2_0000_0000, true), (u32::MAX as u64, false)] ; "gt")]
#[test_case("SCMP_CMP_GE", BIG, None, &[(BIG, true), (BIG - 1, false), (0x2_0000_0000, true), (6, false)] ; "ge")]
#[test_case("SCMP_CMP_MASKED_EQ", 0xff00_0000_00ff, Some(0x1200_0000_0034), &[(0x1234_5678_9a34, true), (0x1200_0000_0035, false), (0x1300_0000_0034, false)] ; "masked eq")]
fn each_operator(op: &str, value: u64, value_two: Option<u64>, cases: &[(u64, bool)]) {
    let mut arg = json!({"index": 2, "value": value, "op": op});
    if let Some(v2) = value_two {
        arg["valueTwo"] = json!(v2);
    }
    let f = compile_json(deny_mkdir("SCMP_ACT_ERRNO", json!({"args": [arg]})));
    for (x, hit) in cases {
        let got = run(f.instructions(), X86_64, libc::SYS_mkdir as u32, [0, 0, *x, 0, 0, 0]);
        assert_eq!(got == libc::SECCOMP_RET_ERRNO | 1, *hit, "{op} {value:#x} vs {x:#x}");
    }
}

#[test]
fn same_index_twice_is_or_and_different_indexes_are_and() {
    let or =
        json!([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]);
    let f = compile_json(deny_mkdir("SCMP_ACT_ERRNO", json!({"args": or})));
    let hit = |a: [u64; 6]| run(f.instructions(), X86_64, libc::SYS_mkdir as u32, a) != ALLOW;
    assert!(hit([1, 0, 0, 0, 0, 0]) && hit([2, 0, 0, 0, 0, 0]) && !hit([3, 0, 0, 0, 0, 0]));
    let and =
        json!([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]);
    let f = compile_json(deny_mkdir("SCMP_ACT_ERRNO", json!({"args": and})));
    let hit = |a: [u64; 6]| run(f.instructions(), X86_64, libc::SYS_mkdir as u32, a) != ALLOW;
    assert!(hit([1, 2, 0, 0, 0, 0]) && !hit([1, 3, 0, 0, 0, 0]) && !hit([0, 2, 0, 0, 0, 0]));
}

#[test]
fn architectures() {
    let only_native = compile_json(deny_mkdir("SCMP_ACT_ERRNO", json!({})));
    // i386 and x32 syscalls are killed when their ABI is not in the filter.
    assert_eq!(run(only_native.instructions(), I386, 39, [0; 6]), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(
        run(only_native.instructions(), X86_64, 0x4000_0000 + 83, [0; 6]),
        libc::SECCOMP_RET_KILL_THREAD
    );
    assert_eq!(run(only_native.instructions(), X86_64, u32::MAX, [0; 6]), ALLOW, "nr -1 is not x32");
    let mut all = deny_mkdir("SCMP_ACT_ERRNO", json!({}));
    all["architectures"] =
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_S390X"]);
    let f = compile_json(all);
    let errno = libc::SECCOMP_RET_ERRNO | 1;
    assert_eq!(run(f.instructions(), I386, 39, [0; 6]), errno, "i386 mkdir is 39");
    assert_eq!(run(f.instructions(), I386, 83, [0; 6]), ALLOW);
    assert_eq!(run(f.instructions(), X86_64, 0x4000_0000 + 83, [0; 6]), errno, "x32 mkdir");
    assert_eq!(run(f.instructions(), X86_64, 83, [0; 6]), errno);
    // A listed architecture is in the filter (runc), even one this kernel never reports
    // (aarch64 has no mkdir); one of another endianness is skipped (libseccomp refuses it).
    assert_eq!(run(f.instructions(), 0xc000_00b7, 83, [0; 6]), ALLOW, "aarch64");
    assert_eq!(run(f.instructions(), 0x8000_0016, 39, [0; 6]), libc::SECCOMP_RET_KILL_THREAD, "s390x");
    assert_eq!(run(f.instructions(), 0x4000_0028, 39, [0; 6]), libc::SECCOMP_RET_KILL_THREAD, "arm");
}

#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_FOO"}]}), "linux.seccomp.syscalls[0].action: unknown action \"SCMP_ACT_FOO\"" ; "unknown action")]
#[test_case(json!({"defaultAction": "SCMP_ACT_BAR"}), "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_BAR\"" ; "unknown default")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_LOG"}, {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}), "linux.seccomp.syscalls[1].args[0].op: unknown operator \"SCMP_CMP_FOO\"" ; "unknown op")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}), "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_Z80\"" ; "unknown arch")]
fn parse_errors_name_the_path(v: Value, expect: &str) {
    assert_eq!(parse(&v).unwrap_err().to_string(), expect);
}

#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}), "linux.seccomp.syscalls[0].args[0].index: 6 is not" ; "arg index")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_NOTIFY"}]}), "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath" ; "notify without listener")]
#[test_case(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/x"}), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default" ; "notify default")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x", "flags": ["SECCOMP_FILTER_FLAG_TSYNC"], "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_NOTIFY"}]}), "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be combined" ; "notify with tsync")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x", "syscalls": [{"names": ["kill", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}), "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for sendmsg" ; "notify on sendmsg")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}), "linux.seccomp.defaultErrnoRet: 70000" ; "errno too big")]
#[test_case(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}), "linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" ; "wait killable")]
fn compile_errors_name_the_path(v: Value, expect: &str) {
    let e = compile(&profile(v)).unwrap_err().to_string();
    assert!(e.starts_with(expect), "{e}");
}

#[test]
fn flags_are_passed() {
    let f = compile_json(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}),
    );
    assert_eq!(
        f.flags(),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
}

#[test]
fn unknown_names_and_default_actions_are_skipped() {
    let empty = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let unknown = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall", "arm_fadvise64_64"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]}));
    assert_eq!(unknown.len(), empty.len());
}

/// The names libseccomp knows for syscall numbers `0..600` of `arch` (x32's from its bit 30).
fn names_of(arch: libseccomp::ScmpArch, base: i32) -> Vec<String> {
    (base..base + 600)
        .filter_map(|nr| libseccomp::ScmpSyscall::from(nr).get_name_by_arch(arch).ok())
        .collect()
}

/// All names of all three ABIs, with a conditional rule on a few: a docker-sized profile.
fn big_profile() -> Value {
    use libseccomp::ScmpArch;
    let mut names: Vec<String> = names_of(ScmpArch::X8664, 0)
        .into_iter()
        .chain(names_of(ScmpArch::X86, 0))
        .chain(names_of(ScmpArch::X32, 0x4000_0000))
        .collect();
    names.sort();
    names.dedup();
    names.retain(|n| !["personality", "clone"].contains(&n.as_str()));
    json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x7e02_0000, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": names, "action": "SCMP_ACT_ALLOW"}]})
}

#[test]
fn big_profile_fits_and_is_fast() {
    let p = profile(big_profile());
    let t = std::time::Instant::now();
    let f = compile(&p).unwrap();
    let first = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..19 {
        compile(&p).unwrap();
    }
    let took = t.elapsed() / 19;
    println!("first compile {first:?}, then {took:?} each");
    println!(
        "{} syscall names, 3 ABIs: {} instructions in {took:?}",
        p.syscalls().as_ref().unwrap()[4].names().len(),
        f.len()
    );
    assert!(f.len() <= BPF_MAXINSNS);
    verify_program(f.instructions()).unwrap();
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_clone3 as u32, [0; 6]), libc::SECCOMP_RET_ERRNO | 38);
    assert_eq!(run(f.instructions(), X86_64, libc::SYS_personality as u32, [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        run(f.instructions(), X86_64, libc::SYS_personality as u32, [9, 0, 0, 0, 0, 0]),
        libc::SECCOMP_RET_ERRNO | 1
    );
    assert_eq!(run(f.instructions(), I386, 39, [0; 6]), ALLOW);
    // libseccomp takes ~13 ms in release (~50 ms in a loaded debug run): a guard against
    // pathologies only.
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
}

#[test]
fn an_earlier_unconditional_rule_wins() {
    // libseccomp (so runc): for one syscall, the first unconditional rule wins over later
    // ones, conditional or not (the hand-written compiler tried conditional rules first).
    let f = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]}));
    assert_eq!(run(f.instructions(), X86_64, 83, [0; 6]), libc::SECCOMP_RET_ERRNO | 1);
    let f = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_LOG"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(run(f.instructions(), X86_64, 83, [1, 0, 0, 0, 0, 0]), libc::SECCOMP_RET_LOG);
}

#[test_case(&[0x06], true ; "ret only")]
#[test_case(&[], false ; "empty")]
#[test_case(&[0x20, 0x06], true ; "load ret")]
#[test_case(&[0x20], false ; "no final ret")]
#[test_case(&[0x05, 0x06], false ; "ja out")]
#[test_case(&[0x61, 0x06], false ; "ldx not allowed")]
fn verify_program_cases(codes: &[u16], ok: bool) {
    let prog: Vec<sock_filter> = codes
        .iter()
        .map(|c| sock_filter { code: *c, jt: 0, jf: 0, k: if *c == 0x05 { 1 } else { 0 } })
        .collect();
    assert_eq!(verify_program(&prog).is_ok(), ok);
    let jump =
        [sock_filter { code: 0x15, jt: 0, jf: 2, k: 0 }, sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
    assert!(verify_program(&jump).is_err());
    assert!(verify_program(&vec![sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }; 4097]).is_err());
}

#[test]
fn supported_lists_are_spec_names() {
    for a in SUPPORTED_ACTIONS {
        let mut p = deny_mkdir(a, json!({}));
        p["listenerPath"] = json!("/run/listener.sock"); // SCMP_ACT_NOTIFY needs one
        let f = compile_json(p);
        assert!(!f.is_empty(), "{a}");
    }
    for op in SUPPORTED_OPERATORS {
        compile_json(deny_mkdir("SCMP_ACT_ERRNO", json!({"args": [{"index": 0, "value": 1, "op": op}]})));
    }
    let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": SUPPORTED_ARCHES, "flags": SUPPORTED_FLAGS});
    compile_json(p);
}

#[test]
fn notify_with_a_listener_compiles_with_new_listener() {
    let f = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})))
    .unwrap();
    assert!(f.needs_listener());
    let plain =
        compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x"}))).unwrap();
    assert!(!plain.needs_listener());
}

#[test]
fn listener_message_is_runcs_container_process_state() {
    let state = br#"{"ociVersion":"1.2.0","id":"c","status":"creating","pid":42}"#;
    let m: Value = serde_json::from_slice(&super::listener_message(state, None, Some("meta"))).unwrap();
    assert_eq!(m["fds"], json!(["seccompFd"]));
    assert_eq!((m["pid"].as_i64(), m["metadata"].as_str()), (Some(42), Some("meta")));
    assert_eq!(m["state"]["id"], "c");
    assert_eq!(m["ociVersion"], "1.2.0");
}
