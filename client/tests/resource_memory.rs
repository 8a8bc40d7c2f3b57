//! 50 MiB resources (put, list, get by another member, update, get, delete)
//! over a real in-process DS use bounded memory: the content is generated and checked as
//! a stream, so the only large buffers are the pipeline's own.
//!
//! The whole process (DS and both clients) runs under dhat's heap profiler in
//! testing mode; its peak of live heap bytes during the round trip is printed
//! and must stay far below the resource's size. Run alone, this file's one
//! test owns the process-wide profiler.

mod common;

use std::io::{Read, Write};

use common::{new_client, start_ds};
use grove_client::HistoryPolicy;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SIZE: u64 = 50 << 20;
/// The bound asserted: well under the resource's size, above the pipeline's
/// working set (two 1 MiB chunks on each side, bounded channels, HTTP buffers).
const LIMIT: u64 = 16 << 20;

/// `len` pseudo-random bytes, produced on the fly.
struct Gen {
    left: u64,
    x: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = (self.x >> 56) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes and counts what is written, keeps nothing.
#[derive(Default)]
struct HashSink {
    h: blake3::Hasher,
    n: u64,
}

impl Write for HashSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.h.update(data);
        self.n += data.len() as u64;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fifty_mib_resources_in_bounded_memory() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let ds = start_ds(dir.path()).await;
        let alice = new_client(dir.path(), &ds.url(), "alice", 1).await;
        let bob = new_client(dir.path(), &ds.url(), "bob", 1).await;
        let g = alice.create_group_with("big", HistoryPolicy::None).await.unwrap();
        alice.add_members(&g, &["bob"]).await.unwrap();
        bob.sync().await.unwrap();

        let mut expected = HashSink::default();
        std::io::copy(&mut Gen { left: SIZE, x: 0x9e37_79b9_7f4a_7c15 }, &mut expected).unwrap();
        let expected = expected.h.finalize();

        let profiler = dhat::Profiler::builder().testing().build();
        let before = dhat::HeapStats::get();
        let put = alice.put_resource(&g, "big.bin", Gen { left: SIZE, x: 0x9e37_79b9_7f4a_7c15 }, None).await.unwrap();
        assert_eq!(put.size, SIZE);
        let after_put = dhat::HeapStats::get();
        println!("after the put: peak live heap {:.1} MiB", after_put.max_bytes as f64 / (1 << 20) as f64);
        bob.sync().await.unwrap();
        let (sink, got) = bob.get_resource(&g, "big.bin", None, HashSink::default(), None).await.unwrap();
        assert_eq!((sink.n, got.version), (SIZE, 1));
        assert_eq!(sink.h.finalize(), expected, "the content read back differs");
        let listed = bob.resources(&g).unwrap();
        assert_eq!((listed.len(), listed[0].size, listed[0].version), (1, SIZE, 1));

        // Update: bob writes version 2 (other bytes), alice reads it; then delete.
        let v2 = bob.put_resource(&g, "big.bin", Gen { left: SIZE, x: 7 }, None).await.unwrap();
        assert_eq!(v2.version, 2);
        alice.sync().await.unwrap();
        let mut expected2 = HashSink::default();
        std::io::copy(&mut Gen { left: SIZE, x: 7 }, &mut expected2).unwrap();
        let (sink2, got2) = alice.get_resource(&g, "big.bin", None, HashSink::default(), None).await.unwrap();
        assert_eq!((sink2.n, got2.version), (SIZE, 2));
        assert_eq!(sink2.h.finalize(), expected2.h.finalize(), "version 2 read back differs");
        alice.delete_resource(&g, "big.bin").await.unwrap();
        bob.sync().await.unwrap();
        assert!(bob.resources(&g).unwrap().is_empty());
        let stats = dhat::HeapStats::get();
        drop(profiler);

        let peak = stats.max_bytes as u64;
        println!(
            "50 MiB put, get, update, get, delete: peak live heap {:.1} MiB (live at start {:.1} MiB, {} allocations)",
            peak as f64 / (1 << 20) as f64,
            before.curr_bytes as f64 / (1 << 20) as f64,
            stats.total_blocks - before.total_blocks
        );
        assert!(peak < LIMIT, "peak heap {peak} bytes for a {SIZE}-byte resource (limit {LIMIT})");
    });
}
