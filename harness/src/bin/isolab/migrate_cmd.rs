//! `isolab migrate`: a container checkpointed in one VM and restored in another.

use anyhow::Result;
use isolab_harness::kernels::Matrix;
use isolab_harness::lab;
use isolab_harness::migrate::{self, MigrateError, Outcome};
use isolab_harness::protocol::CgroupMode;

use super::{build_image, options, Global};

/// Exit code: 0 migrated (or SKIP), 1 a property did not hold, 2 a VM or step broke.
pub fn migrate(g: &Global, m: &Matrix, kernel: &str, cg: CgroupMode) -> Result<i32> {
    let o = options(g)?;
    let spec = m.select(&[kernel.to_string()])?[0];
    let k = lab::checked_kernel(spec, m, &o.cache)?;
    let img = build_image(&k, &o)?;
    let t = std::time::Instant::now();
    let res = migrate::migrate(&k, &img, cg, &o, &|step| eprintln!("{kernel}/{}: {step}", cg.as_str()));
    let secs = t.elapsed().as_secs_f64();
    match res {
        Ok(Outcome::Migrated(figures)) => {
            println!("MIGRATED {kernel}/{} in {secs:.1} s", cg.as_str());
            figures.iter().for_each(|f| println!("  {f}"));
            Ok(0)
        }
        Ok(Outcome::Skipped(reason)) => {
            println!("SKIP {kernel}/{}: {reason}", cg.as_str());
            Ok(0)
        }
        Err(e @ MigrateError::Step { step: "state survived", .. }) => {
            println!("FAIL {kernel}/{}: {e}", cg.as_str());
            Ok(1)
        }
        Err(e) => {
            println!("ERROR {kernel}/{}: {e}", cg.as_str());
            Ok(2)
        }
    }
}
