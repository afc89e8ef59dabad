#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ipfs_cluster::fuzzing::rest_query(data));
