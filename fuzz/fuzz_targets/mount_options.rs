//! `mounts[].options` strings → [`parse_mount_options`]. Properties: never panics; the flags
//! set and cleared are disjoint; unknown options (and only those) land in `data`, in order;
//! `rbind` implies a recursive bind.
#![no_main]

use isolab_runtime::config::mount_options::is_known_option;
use isolab_runtime::config::parse_mount_options;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let options: Vec<&str> = text.split(',').collect();
    let parsed = parse_mount_options(&options);
    assert!(parsed.flags.intersection(parsed.clear_flags).is_empty(), "{options:?} → {parsed:?}");
    assert_eq!(
        parsed.rec_attr_set
            & parsed.rec_attr_clr
            & !isolab_runtime::config::mount_options::attr::MOUNT_ATTR__ATIME,
        0,
        "{options:?}"
    );
    let data_opts: Vec<&str> = options.iter().copied().filter(|o| !is_known_option(o)).collect();
    assert_eq!(parsed.data, data_opts.join(","), "{options:?}");
    if options.contains(&"rbind") {
        assert!(parsed.bind && parsed.rec);
    }
    if parsed.rec {
        assert!(parsed.bind);
    }
});
