//! Successor groups (issue 14): when a group cannot be used any more, a
//! member replaces it with a new group of the same name and members, minus
//! the ones the user leaves out, linked from the old one.

mod common;

use common::{new_client, start_ds, texts, TestResult};
use grove_client::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_group_replaces_a_broken_one_without_the_offender() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let mallory = new_client(dir.path(), &url, "mallory", 1).await;
    alice.create_group("team").await?;
    alice.add_members("team", &["bob", "mallory"]).await?;
    bob.sync().await?;
    mallory.sync().await?;
    alice.send("team", "old times").await?;
    bob.sync().await?;
    let old = alice.groups()?[0].id.clone();

    // Leaving out someone who is not a member is refused, and nothing is made.
    let err = alice.create_successor("team", &["carol"]).await.unwrap_err();
    assert!(matches!(err, Error::NotInGroup { .. }), "{err}");
    assert_eq!(alice.groups()?.len(), 1);

    let s = alice.create_successor("team", &["mallory"]).await?;
    assert_eq!((s.predecessor.as_str(), s.members.as_slice()), (old.as_str(), &["bob".to_string()][..]));
    assert!(matches!(alice.create_successor(&old, &[]).await.unwrap_err(), Error::InvalidArgument(_)));

    // Bob joins the successor and his client records the link.
    let report = bob.sync().await?;
    assert_eq!(report.joined, vec![s.group.clone()], "{report:?}");
    assert_eq!(report.successors.len(), 1, "{report:?}");
    assert!(report.successors[0].starts_with(&format!("{old}: replaced by {}", s.group)), "{report:?}");
    for (c, by) in [(&alice, None), (&bob, Some("alice"))] {
        let groups = c.groups()?;
        let old_g = groups.iter().find(|g| g.id == old).expect("the old group stays");
        assert_eq!(old_g.successor.as_deref(), Some(s.group.as_str()));
        assert_eq!(old_g.successor_by.as_deref(), by);
        // Its history stays readable.
        assert!(texts(c, &old).contains(&"alice: old times".to_string()));
    }
    // The creator no longer sends into it; another member is only told (any
    // member could announce a successor of its own making).
    let err = alice.send(&old, "here?").await.unwrap_err();
    assert!(matches!(&err, Error::GroupReplaced { successor, .. } if *successor == s.group), "{err}");
    bob.send(&old, "still readable by those who stay").await?;

    // The new group works, without mallory; for its creator the name now means it.
    assert_eq!(alice.resolve_group("team")?, bob.resolve_group(&s.group)?);
    assert!(matches!(bob.resolve_group("team"), Err(Error::AmbiguousGroup { .. })));
    alice.send("team", "fresh start").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, &s.group).last().map(String::as_str), Some("alice: fresh start"));
    assert_eq!(bob.members(&s.group)?.len(), 2);
    let m = mallory.sync().await?;
    assert!(m.joined.is_empty() && m.successors.is_empty(), "mallory is not invited: {m:?}");
    assert!(mallory.groups()?.iter().all(|g| g.id != s.group && g.successor.is_none()));
    Ok(())
}
