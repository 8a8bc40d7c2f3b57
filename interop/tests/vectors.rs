//! One test per RFC 9420 vector file that runs through openmls (the code
//! Grove ships); the checks live in `interop::checks`. The reference model's
//! tests are in `tests/reference.rs`.

use interop::Route;

macro_rules! vector_tests {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $name() {
                interop::harness::test_file($file, Route::Openmls);
            }
        )*

        /// The tests above are exactly the files the table sends through openmls.
        #[test]
        fn every_openmls_file_has_a_test() {
            let tested = [$($file),*];
            let table: Vec<&str> = interop::FILES.iter().filter(|f| f.openmls).map(|f| f.name).collect();
            assert_eq!(table, tested);
        }
    };
}

vector_tests! {
    crypto_basics => "crypto-basics.json",
    welcome => "welcome.json",
    tree_validation => "tree-validation.json",
    messages => "messages.json",
    deserialization => "deserialization.json",
    passive_client_welcome => "passive-client-welcome.json",
    passive_client_handling_commit => "passive-client-handling-commit.json",
    passive_client_random => "passive-client-random.json",
}
