//! One test per RFC 9420 vector file the reference model covers (our own
//! implementation, `interop::reference`, feature `reference-model`, which
//! this crate's dev-dependency on itself turns on).

#![cfg(feature = "reference-model")]

use interop::Route;

macro_rules! vector_tests {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $name() {
                interop::harness::test_file($file, Route::Reference);
            }
        )*

        /// The tests above are exactly the files the table sends through the reference model.
        #[test]
        fn every_reference_file_has_a_test() {
            let tested = [$($file),*];
            let table: Vec<&str> = interop::FILES.iter().filter(|f| f.reference).map(|f| f.name).collect();
            assert_eq!(table, tested);
        }
    };
}

vector_tests! {
    tree_math => "tree-math.json",
    crypto_basics => "crypto-basics.json",
    secret_tree => "secret-tree.json",
    message_protection => "message-protection.json",
    key_schedule => "key-schedule.json",
    psk_secret => "psk_secret.json",
    transcript_hashes => "transcript-hashes.json",
    welcome => "welcome.json",
    tree_operations => "tree-operations.json",
    tree_validation => "tree-validation.json",
    treekem => "treekem.json",
    messages => "messages.json",
    deserialization => "deserialization.json",
}
