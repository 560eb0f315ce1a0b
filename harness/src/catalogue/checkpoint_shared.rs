//! The one checkpoint → restore round trip the `checkpoint.*` assertions of a run share: one
//! counter container whose config satisfies all of them (the hostname, and the memory limit
//! where there is a memory controller), what each needs seen before the checkpoint, one
//! checkpoint and one restore. The first checkpoint assertion makes it; the next ones reuse
//! it, its failure included (each reports it); `run_selected` deletes the container once the
//! next assertion is not a checkpoint one. Against a negative control nothing is shared: each
//! weakened assertion gets its own round trip of its own weakened config.

use serde_json::json;

use super::checkpoint::{mount_view, view, HOSTNAME, LIMIT};
use super::criu::{count, counter_config, round_trip, Images};
use super::{Container, Ctx, Need, Verdict};

/// What the assertions check after the restore against: the restored container and what was
/// seen before the checkpoint.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The restored container (same id, its new init pid).
    pub c: Container,
    /// The counter before the checkpoint.
    pub count: u64,
    /// The container's mount view before the checkpoint.
    pub mounts: Vec<String>,
    /// The processes and interfaces the container saw before the checkpoint.
    pub view: (Vec<String>, Vec<String>),
    /// The host's hostname before the container started.
    pub host_hostname: String,
}

/// The shared round trip, or why it failed; its images are removed when it is dropped.
#[derive(Debug)]
pub struct Shared {
    outcome: Result<Restored, Verdict>,
    weakened: bool,
    _images: Option<Images>,
}

/// Whether assertion `id` uses the shared round trip.
pub fn shares(id: &str) -> bool {
    id.starts_with("checkpoint.")
}

/// The restored container the checkpoint assertions share: made by the first that asks (and
/// kept in `ctx`), reused by the next. A failed checkpoint or restore is the same FAIL (or
/// SKIP) for each, with the runtime's words.
pub fn restored(ctx: &mut Ctx) -> Result<Restored, Verdict> {
    let weakened = ctx.weaken.is_some();
    if let Some(s) = ctx.shared_checkpoint.as_ref().filter(|s| !weakened && !s.weakened) {
        return s
            .outcome
            .clone()
            .map_err(|v| Verdict { detail: format!("{} (shared checkpoint)", v.detail), ..v });
    }
    // A weakened run, or the first: whatever an earlier assertion kept goes.
    ctx.release_kept();
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut cfg = counter_config(ctx);
    cfg["hostname"] = json!(HOSTNAME);
    if ctx.facts.missing(Need::Controller("memory")).is_none() {
        cfg["linux"]["resources"]["memory"] = json!({ "limit": LIMIT });
    }
    let trip = round_trip(ctx, cfg, |ctx, c| {
        let n = count(c).unwrap_or(0);
        Ok((n, mount_view(ctx, c), view(ctx, c)))
    });
    let (outcome, images) = match trip {
        Ok((c, (count, mounts, view), images)) => {
            if !weakened {
                ctx.keep(&c.id);
            }
            (Ok(Restored { c, count, mounts, view, host_hostname }), Some(images))
        }
        Err(v) => (Err(v), None),
    };
    ctx.shared_checkpoint = Some(Shared { outcome: outcome.clone(), weakened, _images: images });
    outcome
}
