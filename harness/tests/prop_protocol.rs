//! The guest → host protocol decoder against a stream recorded from the real agent code (its
//! `EventSink` and `run_command`, run here on the host with a busybox command) and against
//! generated events and garbage. Every line of a stream decodes and re-encodes to the same
//! bytes; a stream cut anywhere still decodes up to its last complete line; any event encodes
//! to exactly one line that decodes to an equal event; garbage is an error quoting the line.
//!
//! `ISOLAB_RECORD_STREAM=PATH` also writes the recorded stream to PATH (the fuzz seed
//! `fuzz/corpus/protocol_decode/agent-stream.jsonl` was made that way).

use std::io::{Read, Seek};

use isolab_harness::agent::exec::run_command;
use isolab_harness::agent::EventSink;
use isolab_harness::protocol::{
    decode_line, encode_line, CgroupMode, Event, Outcome, ProtocolError, Request, Stream, PROTOCOL_VERSION,
};
use proptest::prelude::*;

fn hello() -> Event {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers"))
        .unwrap_or_default();
    Event::Hello {
        protocol_version: PROTOCOL_VERSION,
        kernel_release: release.trim().to_owned(),
        cgroup_mode: CgroupMode::V2,
        cgroup_controllers: controllers.split_whitespace().map(str::to_owned).collect(),
        modules_loaded: vec!["veth".into(), "bridge".into()],
        boot_warnings: vec![],
        uptime_ms: 412,
        phases_ms: vec![("switch_root".into(), 40), ("mounts".into(), 61), ("modules".into(), 230)],
    }
}

/// What the agent sends for one `exec` request, recorded through its own code.
fn record_stream() -> String {
    assert!(std::path::Path::new("/bin/busybox").exists(), "busybox-static is not installed");
    let mut file = tempfile::tempfile().unwrap();
    let sink = EventSink::new(file.try_clone().unwrap());
    sink.send(&hello());
    let script = "echo out; echo 'err ü' >&2; printf 'tab\\there {\"event\":\"done\"} \\377\\n'; printf 'no newline'; exit 3";
    let argv: Vec<String> = ["/bin/busybox", "sh", "-c", script].map(String::from).to_vec();
    run_command(&sink, &argv, &[("ISOLAB".into(), "1".into())], 10);
    sink.send(&Event::Result {
        id: "pid.init_is_pid1".into(),
        outcome: Outcome::Pass,
        detail: String::new(),
        duration_ms: 31,
    });
    sink.send(&Event::Result {
        id: "cgroup.memory.oom_kill".into(),
        outcome: Outcome::Skip,
        detail: "no memory controller".into(),
        duration_ms: 2,
    });
    sink.send(&Event::Done);
    file.rewind().unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_recorded_agent_stream_decodes_line_by_line() {
    let text = record_stream();
    if let Ok(path) = std::env::var("ISOLAB_RECORD_STREAM") {
        std::fs::write(path, &text).unwrap();
    }
    assert!(text.ends_with('\n'));
    let events: Vec<Event> = text
        .lines()
        .map(|line| {
            let ev: Event = decode_line(line).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(encode_line(&ev).unwrap(), format!("{line}\n"), "re-encoding changed the line");
            ev
        })
        .collect();
    assert!(matches!(events[0], Event::Hello { .. }));
    let out = |stream: Stream, line: &str| Event::CommandOutput { stream, line: line.into() };
    let body: Vec<&Event> = events.iter().filter(|e| !matches!(e, Event::Heartbeat { .. })).collect();
    assert!(body.contains(&&out(Stream::Stdout, "out")));
    assert!(body.contains(&&out(Stream::Stderr, "err ü")));
    assert!(body.contains(&&out(Stream::Stdout, "tab\there {\"event\":\"done\"} \u{fffd}")), "{body:?}");
    assert!(body.contains(&&out(Stream::Stdout, "no newline")));
    assert!(body.contains(&&Event::CommandExit { code: 3, signal: None }));
    assert_eq!(events.last(), Some(&Event::Done));
}

#[test]
fn a_stream_cut_anywhere_decodes_up_to_its_last_complete_line() {
    let text = record_stream();
    let complete = text.lines().count();
    for cut in 0..text.len() {
        let Some(prefix) = text.get(..cut) else { continue };
        let whole_lines = prefix.matches('\n').count();
        let decoded =
            prefix.split('\n').take(whole_lines).filter(|l| decode_line::<Event>(l).is_ok()).count();
        assert_eq!(decoded, whole_lines, "cut at {cut}");
        if let Some(partial) = prefix.rsplit('\n').next().filter(|p| !p.is_empty()) {
            // A partial line is an error quoting it, never a panic (or a different event).
            match decode_line::<Event>(partial) {
                Err(ProtocolError::Malformed { line, .. }) => assert_eq!(line, partial.trim()),
                Err(e) => panic!("{e}"),
                Ok(ev) => assert!(text.lines().any(|l| decode_line::<Event>(l).ok() == Some(ev.clone()))),
            }
        }
    }
    assert!(complete > 6);
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,16}", "[\\x00-\\x1f\"\\\\\u{2028}\u{fffd}a-z]{0,12}"]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            any::<bool>(),
            prop::collection::vec(text(), 0..3),
            any::<u64>(),
            prop::collection::vec((text(), any::<u64>()), 0..3)
        )
            .prop_map(|(v, r, v1, list, up, phases)| Event::Hello {
                protocol_version: v,
                kernel_release: r,
                cgroup_mode: if v1 { CgroupMode::V1 } else { CgroupMode::V2 },
                cgroup_controllers: list.clone(),
                modules_loaded: list.clone(),
                boot_warnings: list,
                uptime_ms: up,
                phases_ms: phases,
            }),
        text().prop_map(|message| Event::Log { message }),
        any::<u64>().prop_map(|uptime_ms| Event::Heartbeat { uptime_ms }),
        (any::<bool>(), text()).prop_map(|(err, line)| Event::CommandOutput {
            stream: if err { Stream::Stderr } else { Stream::Stdout },
            line
        }),
        (any::<i32>(), any::<Option<i32>>()).prop_map(|(code, signal)| Event::CommandExit { code, signal }),
        (text(), 0usize..4, text(), any::<u64>()).prop_map(|(id, o, detail, duration_ms)| Event::Result {
            id,
            outcome: [Outcome::Pass, Outcome::Fail, Outcome::Skip, Outcome::Error][o],
            detail,
            duration_ms
        }),
        text().prop_map(|message| Event::Error { message }),
        Just(Event::Done),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_event_is_one_line_that_decodes_to_itself(ev in event()) {
        let line = encode_line(&ev).unwrap();
        prop_assert!(line.ends_with('\n'));
        prop_assert!(!line[..line.len() - 1].contains(['\n', '\r']), "{:?}", line);
        prop_assert_eq!(decode_line::<Event>(&line).unwrap(), ev);
    }

    #[test]
    fn garbage_is_an_error_quoting_the_line(line in ".{0,40}") {
        for r in [decode_line::<Event>(&line).err(), decode_line::<Request>(&line).err()].into_iter().flatten() {
            match r {
                ProtocolError::Malformed { line: quoted, .. } => prop_assert_eq!(quoted, line.trim()),
                e => prop_assert!(false, "{}", e),
            }
        }
    }
}
