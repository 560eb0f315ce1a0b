use super::*;
use test_case::test_case;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

use crate::seccomp::verify::RET;
const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;

/// libseccomp's shape: check the arch, then `jeq nr` after `jeq nr`, all jumping to one allow.
fn allow_list(nrs: &[u32]) -> Vec<sock_filter> {
    let n = nrs.len();
    let mut p =
        vec![ins(LD_ABS, 0, 0, 4), ins(JEQ, 1, 0, 0xc000_003e), ins(RET, 0, 0, 0), ins(LD_ABS, 0, 0, 0)];
    for (i, &nr) in nrs.iter().enumerate() {
        p.push(ins(JEQ, u8::try_from(n - i).unwrap(), 0, nr));
    }
    p.push(ins(RET, 0, 0, EPERM));
    p.push(ins(RET, 0, 0, ALLOW));
    p
}

fn decision(p: &[sock_filter], nr: u32) -> Option<u32> {
    interp::run(p, &SeccompData { nr, arch: 0xc000_003e, ..SeccompData::default() })
}

#[test_case(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4 + 2 + 2 ; "one range is two tests")]
#[test_case(&[9, 3, 4, 5, 0, 1, 2, 7], 4 + 2 + 1 + 1 + 2 ; "unsorted: a range and two single numbers")]
#[test_case(&[0, 0xffff_fffe, 0xffff_ffff, 1], 4 + 2 + 2 + 2 ; "ranges at both ends of u32")]
fn shrinks_runs_and_decides_alike(nrs: &[u32], want_len: usize) {
    let p = allow_list(nrs);
    let s = shrink(&p);
    assert_eq!(s.len(), want_len);
    decide_alike(&p, &s).unwrap();
    for nr in (0..20).chain([0xffff_fffd, 0xffff_fffe, 0xffff_ffff]) {
        let want = if nrs.contains(&nr) { ALLOW } else { EPERM };
        assert_eq!(decision(&s, nr), Some(want), "nr {nr}");
    }
}

#[test]
fn a_run_member_that_is_jumped_to_ends_the_run() {
    // 0: ld nr; 1: jeq 100 → 5, into the run of jeq 1..=7 (2..=8, all to allow at 10);
    // 9: errno. The run splits at 5: two ranges, 1..=3 and 4..=7.
    let mut p = vec![ins(LD_ABS, 0, 0, 0), ins(JEQ, 3, 0, 100)];
    for nr in 1..=7u32 {
        let idx = nr as usize + 1;
        p.push(ins(JEQ, u8::try_from(10 - (idx + 1)).unwrap(), 0, nr));
    }
    p.extend([ins(RET, 0, 0, EPERM), ins(RET, 0, 0, ALLOW)]);
    let s = shrink(&p);
    assert_eq!(s.len(), 2 + 2 + 2 + 2);
    decide_alike(&p, &s).unwrap();
    for (nr, want) in [(1, ALLOW), (3, ALLOW), (4, ALLOW), (7, ALLOW), (8, EPERM), (100, EPERM)] {
        assert_eq!(decision(&s, nr), Some(want), "nr {nr}");
    }
}

#[test]
fn runs_to_other_targets_stay_apart() {
    // 0: ld nr; 1..=8: jeq 1..=8, the first four to allow (11), the others to errno (10);
    // 9: kill.
    let mut p = vec![ins(LD_ABS, 0, 0, 0)];
    for nr in 1..=8u32 {
        let (idx, target) = (nr as usize, if nr <= 4 { 11 } else { 10 });
        p.push(ins(JEQ, u8::try_from(target - (idx + 1)).unwrap(), 0, nr));
    }
    p.extend([ins(RET, 0, 0, 0), ins(RET, 0, 0, EPERM), ins(RET, 0, 0, ALLOW)]);
    let s = shrink(&p);
    assert_eq!(s.len(), 1 + 2 + 2 + 3, "two runs, one range each");
    decide_alike(&p, &s).unwrap();
    assert_eq!(decision(&s, 3), Some(ALLOW));
    assert_eq!(decision(&s, 6), Some(EPERM));
    assert_eq!(decision(&s, 9), Some(0));
}

#[test]
fn without_ranges_the_program_stays_as_it_is() {
    let nrs: Vec<u32> = (0..200).map(|i| i * 2).collect();
    let p = allow_list(&nrs);
    assert_eq!(
        shrink(&p).iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect::<Vec<_>>(),
        p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect::<Vec<_>>()
    );
}

#[test]
fn decide_alike_finds_a_difference() {
    let p = allow_list(&[1, 2, 3]);
    let mut q = shrink(&p);
    let last = q.len() - 1;
    q[last].k = EPERM;
    assert!(decide_alike(&p, &q).is_err());
}

/// The profiles engines send (containerd's `ctr run` sends none), compiled by libseccomp: shorter, and deciding alike.
#[test_case("docker.json" ; "docker")]
#[test_case("podman.json" ; "podman")]
fn engine_profiles_shrink_and_decide_alike(file: &str) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-images/engine-configs").join(file);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let profile = crate::seccomp::parse(&config["linux"]["seccomp"]).unwrap();
    let (ctx, _) = super::super::context::context(&profile).unwrap();
    let long = super::super::context::export(&ctx).unwrap();
    let short = shrink(&long);
    eprintln!("{file}: {} → {} instructions", long.len(), short.len());
    assert!(short.len() * 2 < long.len(), "{file}: {} → {}", long.len(), short.len());
    crate::seccomp::verify_program(&short).unwrap();
    decide_alike(&long, &short).unwrap();
}
