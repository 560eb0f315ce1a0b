//! Property tests of the seccomp translation: any profile built from the spec's vocabulary
//! either fails naming a `linux.seccomp` path or compiles to a classic BPF program the kernel's
//! checker would take, decoded here independently of isorun's own verifier: 1..=4096
//! instructions, every jump inside the program, loads inside `seccomp_data`, a final `ret`.

use isolab_runtime::seccomp::{self, sock_filter, SeccompError, BPF_MAXINSNS};
use proptest::prelude::*;
use serde_json::{json, Value};

const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRAP",
];
const OPS: &[&str] = &seccomp::SUPPORTED_OPERATORS;
const SYSCALLS: &[&str] = &[
    "read",
    "write",
    "openat",
    "mkdir",
    "clone",
    "clone3",
    "bpf",
    "kexec_load",
    "ptrace",
    "socket",
    "no_such_call",
];

fn check_program(prog: &[sock_filter]) {
    let n = prog.len();
    assert!((1..=BPF_MAXINSNS).contains(&n), "{n} instructions");
    for (i, ins) in prog.iter().enumerate() {
        match ins.code & 0x07 {
            0x00 => assert!(ins.code == 0x20 && ins.k % 4 == 0 && ins.k < 64, "insn {i}: load {ins:?}"),
            0x05 if ins.code & 0xf0 == 0 => {
                assert!(i + 1 + (ins.k as usize) < n, "insn {i}: ja out of range")
            }
            0x05 => assert!(i + 1 + usize::from(ins.jt.max(ins.jf)) < n, "insn {i}: jump out of range"),
            _ => {}
        }
    }
    assert_eq!(prog[n - 1].code & 0x07, 0x06, "the last instruction is not a ret");
}

fn names_a_seccomp_path(e: &SeccompError) -> bool {
    e.to_string().starts_with("linux.seccomp")
}

fn compile(profile: &Value) {
    match seccomp::parse(profile).and_then(|p| seccomp::compile(&p)) {
        Ok(filter) => check_program(filter.instructions()),
        Err(e) => assert!(names_a_seccomp_path(&e), "{e}"),
    }
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(prop::sample::select(SYSCALLS), 1..5),
        prop::sample::select(ACTIONS),
        prop::collection::vec((prop_oneof![19 => 0u32..6, 1 => 6u32..8], prop::sample::select(OPS), any::<u64>(), any::<u64>()), 0..4),
    )
        .prop_map(|(names, action, args)| {
            let args: Vec<Value> = args
                .into_iter()
                .map(|(index, op, value, value_two)| json!({"index": index, "op": op, "value": value, "valueTwo": value_two}))
                .collect();
            json!({"names": names, "action": action, "errnoRet": 1, "args": args})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn profiles_compile_to_programs_the_kernel_accepts(
        default in prop::sample::select(ACTIONS),
        rules in prop::collection::vec(rule(), 0..8),
    ) {
        compile(&json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": rules}));
    }
}

/// Regression: the input on which the `seccomp_bpf` fuzz target found libseccomp 2.5.4 leaking
/// rule-tree nodes (fuzz/notes/libseccomp-leak.c): repeated names, merged conditions and an
/// argument index used twice. It must still compile to a valid program.
#[test]
fn the_profile_that_made_libseccomp_leak_compiles() {
    let args1 = json!([
        {"index": 2, "op": "SCMP_CMP_NE", "value": 7936186964602086766u64, "valueTwo": 8315457049578250517u64},
        {"index": 5, "op": "SCMP_CMP_MASKED_EQ", "value": 2522014830083534370u64},
        {"index": 1, "op": "SCMP_CMP_GT", "value": 7308815671442350369u64}
    ]);
    let args2 = json!([
        {"index": 2, "op": "SCMP_CMP_GE", "value": 7936186964602086766u64, "valueTwo": 8315457049578250517u64},
        {"index": 5, "op": "SCMP_CMP_MASKED_EQ", "value": 2522014830083534370u64},
        {"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 2387225703656530209u64, "valueTwo": 2387225703656530209u64},
        {"index": 1, "op": "SCMP_CMP_NE", "value": 2387225703656530209u64, "valueTwo": 2387225703656530209u64}
    ]);
    let profile = json!({"defaultAction": "SCMP_ACT_KILL", "syscalls": [
        {"names": ["bpf", "bpf", "bpf", "bpf", "clone3"], "action": "SCMP_ACT_TRAP", "errnoRet": 1935762796, "args": args1},
        {"names": ["kexec_load", "bpf", "read", "bpf", "clone3"], "action": "SCMP_ACT_TRAP", "errnoRet": 1935762796, "args": args2}
    ]});
    let filter = seccomp::compile(&seccomp::parse(&profile).unwrap()).unwrap();
    check_program(filter.instructions());
}
