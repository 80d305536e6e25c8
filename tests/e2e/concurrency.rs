//! Two hifi processes writing at once lose nothing.

use std::thread;

use super::util::{TestProject, hifi_in};

#[test]
fn concurrent_card_adds_lose_nothing() {
    let p = TestProject::new().service("catalog").standard();
    let dir = p.path().to_path_buf();

    let writers: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|prefix| {
            let dir = dir.clone();
            thread::spawn(move || {
                for i in 0..20 {
                    let id = format!("{prefix}-{i}");
                    hifi_in(&dir, "tester", &["card", "add", &id, "--branch", "main"]).ok();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("a writer failed");
    }

    let mut ids = p.card_ids();
    ids.sort();
    let mut expected: Vec<String> = ["A", "B"]
        .iter()
        .flat_map(|prefix| (0..20).map(move |i| format!("{prefix}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
}
