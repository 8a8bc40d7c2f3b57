//! Padding (issue 14): application messages are MLS-padded to length buckets,
//! so the DS, which stores them, learns only a bucket of each message's
//! length. Over a real DS, for every supported ciphersuite.

mod common;

use std::collections::BTreeMap;

use common::{ds_with_pair, texts, TestResult, SUITES};
use grove_proto::EntryKind;

/// Texts of several lengths, sent by alice: the ciphertexts the DS stored
/// fall in the documented buckets, and bob reads every text as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_messages_are_padded_to_buckets() -> TestResult {
    let lengths = [1usize, 200, 1_000, 1_500, 5_000, 6_000, 9_000];
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let (ds, alice, bob) = ds_with_pair(dir.path(), suite, "pad").await;
        let before = alice.fetch_log("pad", 0).await?.last_seq;

        let mut sent = Vec::new();
        for len in lengths {
            let text = "a".repeat(len);
            let seq = alice.send("pad", &text).await?;
            sent.push((len, seq, text));
        }
        let page = alice.fetch_log("pad", before).await?;
        let sizes: BTreeMap<u64, usize> = page
            .messages
            .iter()
            .filter(|m| m.kind == EntryKind::Application)
            .map(|m| (m.seq, m.message.len()))
            .collect();
        let size = |len: usize| sent.iter().find(|s| s.0 == len).and_then(|s| sizes.get(&s.1)).copied().unwrap();
        // 1 and 200 bytes share the smallest (512-byte) bucket; so do 1,000 and 1,500
        // (2 KiB), and 5,000 and 6,000 (two 4 KiB blocks).
        assert_eq!(size(1), size(200), "suite {suite}: 1 and 200 bytes leak their length");
        assert_eq!(size(1_000), size(1_500), "suite {suite}");
        assert_eq!(size(5_000), size(6_000), "suite {suite}");
        // Buckets differ where the lengths are far apart, and grow by the block.
        assert!(size(200) < size(1_000) && size(1_500) < size(5_000) && size(6_000) < size(9_000));
        assert_eq!(size(9_000) - size(6_000), 4096, "suite {suite}: above 4 KiB, multiples of 4 KiB");
        assert_eq!(size(1_000) - size(1), 2048 - 512, "suite {suite}: power-of-two buckets");

        // The padding is invisible to members: bob reads every text as sent.
        bob.sync().await?;
        let want: Vec<String> = sent.iter().map(|(_, _, t)| format!("alice: {t}")).collect();
        assert_eq!(texts(&bob, "pad"), want, "suite {suite}");
        ds.shutdown().await?;
    }
    Ok(())
}
