//! cgroup v2 device rules: `linux.resources.devices` (v1 semantics: later rules win, a
//! wildcard `a` rule resets the list) compiled to a `BPF_PROG_TYPE_CGROUP_DEVICE` program,
//! as runc's devicefilter does.

use oci_spec::runtime::LinuxDeviceCgroup;

use super::sys::Insn;
use super::CgroupError;

/// One normalised rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// 0 = any, 1 = block, 2 = char (BPF_DEVCG_DEV_*).
    typ: u32,
    major: Option<u32>,
    minor: Option<u32>,
    /// BPF_DEVCG_ACC_* bits: mknod 1, read 2, write 4.
    access: u32,
}

/// Parse `c 1:3 rwm` (the v1 rule syntax [`super::resources::device_rule`] produces).
fn parse(allow: bool, s: &str) -> Result<Rule, CgroupError> {
    let bad = || CgroupError::Unsupported {
        field: "linux.resources.devices".into(),
        reason: format!("bad device rule {s:?}"),
    };
    let mut f = s.split(' ');
    let typ = match f.next() {
        Some("a") => 0,
        Some("b") => 1,
        Some("c") => 2,
        _ => return Err(bad()),
    };
    let (maj, min) = f.next().and_then(|d| d.split_once(':')).ok_or_else(bad)?;
    let num = |n: &str| if n == "*" { Ok(None) } else { n.parse().map(Some).map_err(|_| bad()) };
    let mut access = 0;
    for c in f.next().ok_or_else(bad)?.chars() {
        access |= match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => return Err(bad()),
        };
    }
    Ok(Rule { allow, typ, major: num(maj)?, minor: num(min)?, access })
}

const LDXW: u8 = 0x61;
const AND32K: u8 = 0x54;
const RSH32K: u8 = 0x74;
const MOV32X: u8 = 0xbc;
const JNEK: u8 = 0x55;
const JNEX: u8 = 0x5d;
const MOV64K: u8 = 0xb7;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// The program for `rules` (in config order) followed by the `defaults` allow rules.
pub fn program<'a>(
    rules: &[LinuxDeviceCgroup],
    defaults: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Insn>, CgroupError> {
    let mut default_allow = true; // a new v1 devices cgroup allows everything
    let mut list: Vec<Rule> = Vec::new();
    let all = rules.iter().map(|d| parse(d.allow(), &super::resources::device_rule(d)));
    for r in all.chain(defaults.into_iter().map(|s| parse(true, s))) {
        let r = r?;
        if r.typ == 0 && r.major.is_none() && r.minor.is_none() && r.access == 7 {
            default_allow = r.allow;
            list.clear();
        } else {
            list.push(r);
        }
    }
    // ctx: struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
    let mut p = vec![
        insn(LDXW, 2, 1, 0, 0),
        insn(AND32K, 2, 0, 0, 0xffff),
        insn(LDXW, 3, 1, 0, 0),
        insn(RSH32K, 3, 0, 0, 16),
        insn(LDXW, 4, 1, 4, 0),
        insn(LDXW, 5, 1, 8, 0),
    ];
    let imm = |v: u32| {
        i32::try_from(v).map_err(|_| CgroupError::Unsupported {
            field: "linux.resources.devices".into(),
            reason: format!("device number {v} too large"),
        })
    };
    for r in list.iter().rev() {
        // Each check jumps to the next rule's block when it fails; offsets fixed below.
        let mut block: Vec<Insn> = Vec::new();
        if r.typ != 0 {
            block.push(insn(JNEK, 2, 0, 0, imm(r.typ)?));
        }
        if r.access != 7 {
            block.push(insn(MOV32X, 1, 3, 0, 0));
            block.push(insn(AND32K, 1, 0, 0, imm(r.access)?));
            block.push(insn(JNEX, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNEK, 4, 0, 0, imm(m)?));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNEK, 5, 0, 0, imm(m)?));
        }
        block.push(insn(MOV64K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNEK | JNEX) {
                ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64K, 0, 0, 0, i32::from(default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    /// Run the program on (type, access, major, minor), for the opcodes `program` emits.
    fn run(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (d, s) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            let k = i.imm as u32 as u64;
            pc += 1;
            match i.code {
                LDXW => r[d] = u64::from(ctx[i.off as usize / 4]),
                AND32K => r[d] = (r[d] & k) & 0xffff_ffff,
                RSH32K => r[d] = (r[d] & 0xffff_ffff) >> k,
                MOV32X => r[d] = r[s] & 0xffff_ffff,
                JNEK if r[d] != k => pc += i.off as usize,
                JNEX if r[d] != r[s] => pc += i.off as usize,
                JNEK | JNEX => {}
                MOV64K => r[d] = k,
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    const DENY_ALL_NULL: &str =
        r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#;

    #[test_case(DENY_ALL_NULL, 2, 2, 1, 3, 1 ; "null read allowed")]
    #[test_case(DENY_ALL_NULL, 2, 6, 1, 3, 1 ; "null read write allowed")]
    #[test_case(DENY_ALL_NULL, 2, 1, 1, 3, 0 ; "null mknod denied")]
    #[test_case(DENY_ALL_NULL, 2, 2, 1, 5, 0 ; "zero denied")]
    #[test_case(DENY_ALL_NULL, 1, 2, 1, 3, 0 ; "block 1 3 denied")]
    #[test_case("[]", 1, 7, 8, 0, 1 ; "no rules allow all")]
    #[test_case(r#"[{"allow":false,"type":"b","major":8,"access":"w"}]"#, 1, 4, 8, 1, 0 ; "deny write sda")]
    #[test_case(r#"[{"allow":false,"type":"b","major":8,"access":"w"}]"#, 1, 2, 8, 1, 1 ; "read sda still allowed")]
    #[test_case(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5}]"#, 2, 2, 1, 5, 0 ; "later deny wins")]
    fn semantics(json: &str, typ: u32, access: u32, major: u32, minor: u32, want: u64) {
        let p = program(&rules(json), []).unwrap();
        assert_eq!(run(&p, typ, access, major, minor), want);
    }

    #[test]
    fn defaults_are_allowed_after_deny_all() {
        let p = program(&rules(r#"[{"allow":false,"access":"rwm"}]"#), ["c 1:9 rwm", "c 136:* rwm"]).unwrap();
        assert_eq!(run(&p, 2, 2, 1, 9), 1);
        assert_eq!(run(&p, 2, 6, 136, 4), 1);
        assert_eq!(run(&p, 2, 2, 1, 1), 0);
    }
}
