//! The repository's own tests: the group name index and the migration of a
//! home written before it existed.

use super::*;
use crate::records::{GroupRecord, HistoryPolicy};
use crate::storage::SledStorage;

fn record(name: Option<&str>) -> GroupRecord {
    GroupRecord { cursor: 7, ..GroupRecord::fresh(name.map(str::to_owned), 0, HistoryPolicy::None, 0) }
}

fn temp_provider() -> GroveProvider {
    let db = sled::Config::new().temporary(true).open().unwrap();
    GroveProvider::new(SledStorage::from_db(db).unwrap())
}

fn repo(provider: &GroveProvider) -> Repo<'_, SledStorage> {
    use openmls_traits::OpenMlsProvider as _;
    Repo::new(provider.storage())
}

#[test]
fn groups_are_found_by_id_and_by_name_through_the_index() {
    let provider = temp_provider();
    let groups = repo(&provider).groups();
    groups.put(b"g-one", &record(Some("ops"))).unwrap();
    groups.put(b"g-two", &record(Some("dev"))).unwrap();
    groups.put(b"g-three", &record(None)).unwrap();

    let id = grove_proto::group_id_to_path(b"g-three");
    assert_eq!(groups.resolve(&id).unwrap(), b"g-three");
    assert_eq!(groups.resolve("ops").unwrap(), b"g-one");
    assert!(matches!(groups.resolve("nope"), Err(Error::UnknownGroup(n)) if n == "nope"));

    // A rename moves the index entry; a second group of that name makes it ambiguous.
    groups.update(b"g-two", |r| r.name = Some("ops".into())).unwrap();
    assert!(matches!(groups.resolve("dev"), Err(Error::UnknownGroup(_))));
    match groups.resolve("ops") {
        Err(Error::AmbiguousGroup { name, ids }) => {
            assert_eq!(name, "ops");
            let expected: Vec<String> =
                [&b"g-one"[..], b"g-two"].iter().map(|g| grove_proto::group_id_to_path(g)).collect();
            assert_eq!(ids, expected);
        }
        other => panic!("expected AmbiguousGroup, got {other:?}"),
    }
    // Removing a group removes its index entry.
    groups.remove(b"g-one").unwrap();
    assert_eq!(groups.resolve("ops").unwrap(), b"g-two");
    assert_eq!(groups.ids().unwrap(), vec![b"g-three".to_vec(), b"g-two".to_vec()]);
    // A name that is also a prefix of another name matches only itself.
    groups.put(b"g-four", &record(Some("op"))).unwrap();
    assert_eq!(groups.named("op").unwrap(), vec![b"g-four".to_vec()]);
    assert_eq!(groups.named("ops").unwrap(), vec![b"g-two".to_vec()]);
}

#[test]
fn a_home_without_the_name_index_is_migrated_on_open() {
    use openmls_traits::OpenMlsProvider as _;
    let provider = temp_provider();
    // What a home of the last release holds: group records, no index, no schema marker.
    let s = provider.storage();
    s.put_app_value(ns::GROUPS, b"g-old", &record(Some("archive"))).unwrap();
    s.put_app_value(ns::GROUPS, b"g-new", &record(Some("team"))).unwrap();
    s.put_app_value(ns::GROUPS, b"g-anon", &record(None)).unwrap();
    assert_eq!(repo(&provider).meta().schema().unwrap(), 0);
    assert!(matches!(repo(&provider).groups().resolve("team"), Err(Error::UnknownGroup(_))));

    migrate(&provider).unwrap();
    assert_eq!(repo(&provider).meta().schema().unwrap(), SCHEMA);
    let groups = repo(&provider).groups();
    assert_eq!(groups.resolve("archive").unwrap(), b"g-old");
    assert_eq!(groups.resolve("team").unwrap(), b"g-new");
    assert_eq!(groups.require(b"g-new").unwrap().cursor, 7, "records are kept as they were");
    assert_eq!(s.scan_prefix_app(ns::GROUP_NAMES, b"").unwrap().len(), 2);

    // Migrating again changes nothing.
    migrate(&provider).unwrap();
    assert_eq!(s.scan_prefix_app(ns::GROUP_NAMES, b"").unwrap().len(), 2);
}

fn entry(group: &[u8]) -> crate::records::OutboxEntry {
    crate::records::OutboxEntry { group: group.to_vec(), local: Some(1), envelope: None, message: b"mls".to_vec() }
}

#[test]
fn outbox_entries_are_found_by_group() {
    let provider = temp_provider();
    let outbox = repo(&provider).outbox();
    outbox.put(b"h2", &entry(b"g-a")).unwrap();
    outbox.put(b"h1", &entry(b"g-a")).unwrap();
    outbox.put(b"h3", &entry(b"g-b")).unwrap();
    let hashes = |gid: &[u8]| -> Vec<Vec<u8>> { outbox.of_group(gid).unwrap().into_iter().map(|(h, _)| h).collect() };
    assert_eq!(hashes(b"g-a"), vec![b"h1".to_vec(), b"h2".to_vec()]);
    assert_eq!(hashes(b"g-b"), vec![b"h3".to_vec()]);
    outbox.remove(b"h1").unwrap();
    outbox.remove(b"h-unknown").unwrap();
    assert_eq!(hashes(b"g-a"), vec![b"h2".to_vec()]);
    assert!(outbox.get(b"h1").unwrap().is_none());
}

#[test]
fn a_home_without_the_outbox_index_is_migrated_on_open() {
    use openmls_traits::OpenMlsProvider as _;
    let provider = temp_provider();
    // Schema 1 (name index done) with outbox entries written before the outbox index.
    let s = provider.storage();
    s.put_app_value(ns::META, SCHEMA_KEY, &1u32).unwrap();
    s.put_app_value(ns::OUTBOX, b"h1", &entry(b"g-a")).unwrap();
    s.put_app_value(ns::OUTBOX, b"h2", &entry(b"g-b")).unwrap();
    assert!(repo(&provider).outbox().of_group(b"g-a").unwrap().is_empty());
    migrate(&provider).unwrap();
    assert_eq!(repo(&provider).meta().schema().unwrap(), SCHEMA);
    assert_eq!(repo(&provider).outbox().of_group(b"g-a").unwrap().len(), 1);
    assert_eq!(repo(&provider).outbox().of_group(b"g-b").unwrap()[0].0, b"h2");
}
